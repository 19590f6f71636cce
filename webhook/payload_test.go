package webhook

import (
	"errors"
	"testing"
)

func TestEncodePayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Payload
		want string
	}{
		{
			// The example of the product documentation.
			name: "documented example",
			p: Payload{Event: EventJobCompleted, TaskID: "task_xxx", TaskType: "image", Status: StatusCompleted,
				Data: []byte(`{"url": "https://cdn.example.com/image.png", "credits_charged": 6}`), Timestamp: "2024-12-23T10:00:00Z"},
			want: `{"event":"job.completed","task_id":"task_xxx","task_type":"image","status":"completed","data":{"url":"https://cdn.example.com/image.png","credits_charged":6},"timestamp":"2024-12-23T10:00:00Z"}`,
		},
		{
			name: "empty data",
			p:    Payload{Event: EventPing, Timestamp: "2024-12-23T10:00:00Z"},
			want: `{"event":"ping","task_id":"","task_type":"","status":"","data":{},"timestamp":"2024-12-23T10:00:00Z"}`,
		},
		{
			name: "escapes in fields and data order",
			p: Payload{Event: EventJobFailed, TaskID: "t\"1\\<&>\u2028\x00\x1f\x7f", TaskType: "vidéo", Status: StatusFailed,
				Data: []byte(`{"z":1,"1":"\u0041","0":1.0}`), Timestamp: "t"},
			want: "{\"event\":\"job.failed\",\"task_id\":\"t\\\"1\\\\<&>\u2028\\u0000\\u001f\x7f\",\"task_type\":\"vidéo\",\"status\":\"failed\",\"data\":{\"0\":1,\"1\":\"A\",\"z\":1},\"timestamp\":\"t\"}",
		},
	}
	for _, tc := range tests {
		got, err := EncodePayload(tc.p)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: EncodePayload = %q, %v\nwant %q", tc.name, got, err, tc.want)
		}
	}
}

func TestEncodePayloadErrors(t *testing.T) {
	t.Parallel()
	_, err := EncodePayload(Payload{Event: EventJobCompleted, Data: []byte(`{"ids":[9007199254740993]}`)})
	var ce *CanonicalError
	if !errors.As(err, &ce) || ce.Path != "ids[0]" || !errors.Is(err, ErrUnsafeInteger) {
		t.Errorf("unsafe data: %v (path %q), want a CanonicalError at ids[0]", err, pathOf(err))
	}
	_, err = EncodePayload(Payload{Event: EventJobCompleted, TaskID: "bad\xff"})
	if !errors.As(err, &ce) || ce.Path != "task_id" || !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("invalid UTF-8 task id: %v", err)
	}
	dst := []byte("keep")
	out, err := AppendPayload(dst, Payload{Data: []byte(`[`)})
	if err == nil || string(out) != "keep" {
		t.Errorf("AppendPayload on bad data = %q, %v; want dst unchanged and an error", out, err)
	}
}

func pathOf(err error) string {
	var ce *CanonicalError
	if errors.As(err, &ce) {
		return ce.Path
	}
	return "<none>"
}

func TestParsePayload(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event":"job.completed","task_id":"task_1","task_type":"image","status":"completed","data":{"url":"https://x/y.png","credits_charged":6},"timestamp":"2024-12-23T10:00:00Z","new_field":true}`)
	p, err := ParsePayload(body)
	if err != nil {
		t.Fatal(err)
	}
	if p.Event != EventJobCompleted || p.TaskID != "task_1" || p.TaskType != "image" || p.Status != StatusCompleted || p.Timestamp != "2024-12-23T10:00:00Z" {
		t.Errorf("ParsePayload = %+v", p)
	}
	var data struct {
		URL     string `json:"url"`
		Credits int    `json:"credits_charged"`
	}
	if err := p.DecodeData(&data); err != nil || data.URL != "https://x/y.png" || data.Credits != 6 {
		t.Errorf("DecodeData = %+v, %v", data, err)
	}
	// A body EncodePayload built parses back to the same fields.
	enc, err := EncodePayload(p)
	if err != nil {
		t.Fatal(err)
	}
	if q, err := ParsePayload(enc); err != nil || q.TaskID != p.TaskID || string(q.Data) != `{"url":"https://x/y.png","credits_charged":6}` {
		t.Errorf("round trip: %+v, %v", q, err)
	}

	for _, bad := range []string{``, `null`, `[]`, `{"event":`, `{"task_id":"x"}`, `{"event":1}`} {
		if _, err := ParsePayload([]byte(bad)); !errors.Is(err, ErrInvalidPayload) {
			t.Errorf("ParsePayload(%q) = %v, want ErrInvalidPayload", bad, err)
		}
	}
	if err := (Payload{}).DecodeData(&data); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("DecodeData without data = %v", err)
	}
}
