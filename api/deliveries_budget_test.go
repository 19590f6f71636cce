package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
)

// Control characters are what a receiver sends to make its text cost most
// in an answer: JSON writes each as six bytes (\u0001).
var (
	escapedError    = strings.Repeat("\x01", nanohook.MaxStoredError)
	escapedLocation = strings.Repeat("\x01", nanohook.MaxStoredLocation)
	escapedBody     = strings.Repeat("\x01", nanohook.MaxStoredResponseBody)
)

// TestDeliveryPageByteBudget lists 100 deliveries whose last_error is the
// longest a receiver can make it in JSON: a page of them once answered
// 620 KiB (and 128 MB before errors were cut). The page must stop early,
// under 256 KiB, with a next_cursor, and walking the cursors must still
// list every delivery once, newest first.
func TestDeliveryPageByteBudget(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "acme")
	webhook := b.newWebhook(t, key, "https://hooks.example.com/a")
	const n = 100
	at := testNow.Add(-time.Hour)
	for range n {
		b.publishAt(t, acct, nanohook.EventJobCompleted, at)
	}
	for i := range n {
		b.attempt(t, at.Add(time.Duration(i)*time.Millisecond), nanohook.DeliveryFailed,
			nanohook.Attempt{Error: escapedError}, time.Time{})
	}

	var seen []int64
	path := fmt.Sprintf("/api/v1/webhooks/%d/deliveries?limit=100", webhook)
	for page := 1; ; page++ {
		r := b.pub(t, "GET", path, key, "")
		data := r.wantSuccess(t, http.StatusOK).([]any)
		t.Logf("page %d: %d deliveries, %d bytes", page, len(data), len(r.raw))
		if len(r.raw) >= 256<<10 {
			t.Fatalf("page %d: %d bytes for %d deliveries, want under 256 KiB", page, len(r.raw), len(data))
		}
		for _, d := range data {
			seen = append(seen, int64(d.(map[string]any)["id"].(float64)))
		}
		next, _ := r.body["next_cursor"].(string)
		if page == 1 && (len(data) == n || next == "") {
			t.Fatalf("first page: %d deliveries, next_cursor %v; want it cut short with a cursor", len(data), r.body["next_cursor"])
		}
		if next == "" {
			break
		}
		if page > n {
			t.Fatal("the cursors never end")
		}
		path = fmt.Sprintf("/api/v1/webhooks/%d/deliveries?limit=100&cursor=%s", webhook, next)
	}
	if len(seen) != n {
		t.Fatalf("listed %d deliveries, want %d", len(seen), n)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] >= seen[i-1] {
			t.Fatalf("ids %v: want each once, newest first", seen)
		}
	}
}

// TestDeliveryDetailByteBudget retries one delivery 40 times (a customer
// may retry without end, each retry adding an attempt) and reads it: the
// detail must stay under 64 KiB, show the newest attempts in order, the
// newest always, and keep attempt_count at every attempt made.
func TestDeliveryDetailByteBudget(t *testing.T) {
	t.Parallel()
	const made = 40
	for _, tt := range []struct {
		name    string
		attempt nanohook.Attempt
		shown   int // attempts expected in the detail; 0: several, fewer than store.MaxDetailAttempts
	}{
		// 4 KiB bodies of plain text: about ten attempts fit.
		{name: "plain bodies", attempt: nanohook.Attempt{ResponseStatus: 500, ResponseBody: strings.Repeat("x", nanohook.MaxStoredResponseBody)}},
		// Every kept text at its longest, all escaped: one attempt is
		// about 44 KiB, so only the newest fits.
		{name: "every text escaped", shown: 1, attempt: nanohook.Attempt{ResponseStatus: 302,
			ResponseBody: escapedBody, Error: escapedError, Location: escapedLocation}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			acct, key := b.newAccount(t, "acme")
			b.newWebhook(t, key, "https://hooks.example.com/a")
			at := testNow.Add(-time.Hour)
			b.publishAt(t, acct, nanohook.EventJobCompleted, at)
			var id int64
			for i := range made {
				next := at.Add(time.Duration(i+1) * time.Second)
				id = b.attempt(t, at.Add(time.Duration(i)*time.Second), nanohook.DeliveryPending, tt.attempt, next).DeliveryID
			}

			r := b.pub(t, "GET", fmt.Sprintf("/api/v1/deliveries/%d", id), key, "")
			d := r.wantData(t, http.StatusOK)
			var detail struct {
				AttemptCount int `json:"attempt_count"`
				Attempts     []struct {
					Number int `json:"number"`
				} `json:"attempts"`
			}
			if err := json.Unmarshal(mustMarshal(t, d), &detail); err != nil {
				t.Fatal(err)
			}
			shown := len(detail.Attempts)
			t.Logf("detail: %d bytes, %d of %d attempts", len(r.raw), shown, made)
			if len(r.raw) >= 64<<10 {
				t.Errorf("detail: %d bytes, want under 64 KiB", len(r.raw))
			}
			if detail.AttemptCount != made {
				t.Errorf("attempt_count = %d, want %d", detail.AttemptCount, made)
			}
			switch {
			case tt.shown != 0 && shown != tt.shown:
				t.Errorf("%d attempts shown, want %d", shown, tt.shown)
			case tt.shown == 0 && (shown < 2 || shown >= made):
				t.Errorf("%d attempts shown, want several and not all", shown)
			}
			for i, a := range detail.Attempts {
				if want := made - shown + 1 + i; a.Number != want {
					t.Fatalf("attempt %d is number %d, want %d: the newest, oldest first", i, a.Number, want)
				}
			}
		})
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
