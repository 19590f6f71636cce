package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// ijsonRefusals are event data that break I-JSON (RFC 7493), with the field
// each refusal names and a word of its message. Before issue 15 (item 4)
// only 9007199254740993 of these was refused: the rest were stored, a
// repeated name with its last value.
var ijsonRefusals = []struct {
	data, field, has string
}{
	{`{"id":9007199254740992}`, "data.id", "beyond ±9007199254740991"},
	{`{"id":9007199254740993}`, "data.id", "beyond ±9007199254740991"},
	{`{"id":9007199254740994}`, "data.id", "beyond ±9007199254740991"},
	{`{"id":-9007199254740994}`, "data.id", "beyond ±9007199254740991"},
	{`{"id":100000000000000000000}`, "data.id", "beyond ±9007199254740991"},
	{`{"id":1e20}`, "data.id", "number 1e20 is an integer beyond"},
	{`{"items":[{"id":1},{"id":18446744073709551615}]}`, "data.items[1].id", "beyond ±9007199254740991"},
	{`{"id":1,"id":2}`, "data.id", `member name "id" appears twice`},
	{`{"a":{"x":1,"\u0078":2}}`, "data.a.x", `member name "x" appears twice`},
	{`{"name":"ab\ud800"}`, "data.name", `unpaired UTF-16 surrogate escape \ud800`},
	{`{"list":["\udc00"]}`, "data.list[0]", `unpaired UTF-16 surrogate escape \udc00`},
}

// TestPublishIJSON: event data must be I-JSON, on the single and the batch
// route alike: every integer within ±(2^53 − 1), unique member names, no
// unpaired surrogates, each refusal a 422 naming the field, nothing stored.
// Numbers that are not integers, and integers of 1e21 and up (which are
// delivered in exponent form), are kept as before.
func TestPublishIJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "a")
	b.newWebhook(t, key, "https://example.com/hook")
	ev := func(task, data string) string {
		return fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":%q,"task_type":"image","data":%s}`, acct, task, data)
	}

	var items []string
	for i, c := range ijsonRefusals {
		msg := b.adm(t, "POST", "/admin/v1/events", ev("t", c.data)).wantError(t, 422, "validation_error", c.field)
		if !strings.HasPrefix(msg, c.field+": ") || !strings.Contains(msg, c.has) || !strings.Contains(msg, "I-JSON") {
			t.Errorf("%s: message %q, want %q and I-JSON named", c.data, msg, c.has)
		}
		items = append(items, ev(fmt.Sprintf("t%d", i), c.data))
	}

	// The batch refuses each of them, naming the item's field.
	r := b.adm(t, "POST", "/admin/v1/events/batch", `{"events":[`+strings.Join(items, ",")+`]}`)
	r.wantError(t, 422, "validation_error", "events[0]."+ijsonRefusals[0].field)
	var env struct {
		Error struct {
			Items []struct {
				Index          int
				Field, Message string
			}
		}
	}
	if err := json.Unmarshal(r.raw, &env); err != nil {
		t.Fatal(err)
	}
	if len(env.Error.Items) != len(ijsonRefusals) {
		t.Fatalf("batch refused %d items, want %d: %s", len(env.Error.Items), len(ijsonRefusals), r.raw)
	}
	for i, got := range env.Error.Items {
		want := fmt.Sprintf("events[%d].%s", i, ijsonRefusals[i].field)
		if got.Index != i || got.Field != want || !strings.Contains(got.Message, ijsonRefusals[i].has) {
			t.Errorf("batch item %d refused as %+v, want field %s saying %q", i, got, want, ijsonRefusals[i].has)
		}
	}
	nothingPending(t, b.store)

	// The edges that stay: the largest safe integers, fractions, numbers
	// delivered with an exponent, the same name in two objects, a pair.
	d := b.adm(t, "POST", "/admin/v1/events", ev("ok",
		`{"max":9007199254740991,"min":-9007199254740991,"f":1.5,"g":9007199254740993.5e-3,"e":1e21,"a":{"x":1},"b":{"x":2},"s":"\ud83d\ude00"}`)).wantData(t, http.StatusAccepted)
	if d["deliveries"] != float64(1) {
		t.Fatalf("publish: %v", d)
	}
	dels := claimAll(t, b.store)
	if len(dels) != 1 {
		t.Fatalf("%d deliveries, want 1", len(dels))
	}
	e, err := b.store.GetEvent(t.Context(), acct, d["event_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if want := `"data":{"max":9007199254740991,"min":-9007199254740991,"f":1.5,"g":9007199254740.994,"e":1e+21,"a":{"x":1},"b":{"x":2},"s":"😀"}`; !strings.Contains(string(e.Payload), want) {
		t.Fatalf("payload %s, want it to hold %s", e.Payload, want)
	}
}
