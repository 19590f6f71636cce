package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzCanonicalize checks that no input panics, that every output is valid
// JSON and its own canonical form, and that every answer agrees with Node.js.
// Plain `go test` runs the seeds only.
func FuzzCanonicalize(f *testing.F) {
	for _, tc := range allCanonicalCases() {
		f.Add([]byte(tc.in))
	}
	for _, s := range []string{
		`{"event":"job.completed","task_id":"task_123","data":{"url":"https://cdn.example.com/a.png","credits_charged":6}}`,
		`{"b":1,"a":2,"b":{"1":1,"0":0,"0":2}}`,
		`[{"4294967294":1,"4294967295":2,"1":3}]`,
		`"\ud83d\ude00\ud83d"`,
		`[1e21,1e-7,1e-6,-0,5e-324,1.7976931348623157e308]`,
		`{"__proto__":{"__proto__":null}}`,
	} {
		f.Add([]byte(s))
	}
	g := newJSONGen(99)
	for range 20 {
		f.Add(g.document())
	}

	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Canonicalize(in)
		if err != nil {
			var ce *CanonicalError
			if !errors.As(err, &ce) {
				t.Fatalf("Canonicalize(%q) error %T %v, want *CanonicalError", in, err, err)
			}
			if !errors.Is(err, ErrInvalidJSON) && !errors.Is(err, ErrUnsafeInteger) && !errors.Is(err, ErrNumberOverflow) && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("Canonicalize(%q) error %v wraps no known sentinel", in, err)
			}
		} else {
			if !json.Valid(got) {
				t.Fatalf("Canonicalize(%q) = %q, not valid JSON", in, got)
			}
			again, err := Canonicalize(got)
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("not idempotent: Canonicalize(%q) = %q, then %q, %v", in, got, again, err)
			}
			appended, err := AppendCanonical([]byte("x"), in)
			if err != nil || string(appended) != "x"+string(got) {
				t.Fatalf("AppendCanonical disagrees with Canonicalize on %q: %q, %v", in, appended, err)
			}
		}
		node := requireNode(t)
		checkAgainstNode(t, node, in, got, err, node.roundTrip(t, in))
	})
}
