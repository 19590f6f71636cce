package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzCanonicalize checks that no input panics, that every output is valid
// JSON and its own canonical form, that every answer agrees with Node.js,
// and that CanonicalizeIJSON refuses exactly what breaks an I-JSON rule.
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
		`{"id":9007199254740992,"n":1e20,"m":1e21,"a":1,"a":"\udc00"}`,
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
		checkIJSON(t, in)
		node := requireNode(t)
		checkAgainstNode(t, node, in, got, err, node.roundTrip(t, in))
	})
}

// FuzzSignVerify checks the signer and the verifier against each other on
// any secret, timestamp, body and hostile signature header: a delivery
// signed with the secret verifies; a changed body, another secret or a
// changed signature never does; and whatever the headers hold, Verify
// answers one of its documented errors without panicking, and accepts only
// when some value is the true signature.
func FuzzSignVerify(f *testing.F) {
	f.Add("whsec_quickstart_secret", int64(1734948000), []byte(`{"event":"job.completed"}`), "v1=00")
	f.Add("", int64(0), []byte{}, "")
	f.Add("s\r\nX-Injected: 1", int64(-1), []byte("\x00\xff"), "v1=abc, v2=def,,v1=")
	f.Add("\xff\xfe", int64(1<<40+1), []byte(strings.Repeat("a", 300)), strings.Repeat("v1=0 ", 40))
	f.Add("é😀", int64(9223372036854775807), []byte(`"\ud800"`), "\tv1=zz\t")
	f.Fuzz(func(t *testing.T, secret string, ts int64, body []byte, hostile string) {
		sig := Sign(secret, ts, body)
		if len(sig) != len(SignatureScheme)+64 || !strings.HasPrefix(sig, SignatureScheme) || strings.Trim(sig[3:], "0123456789abcdef") != "" {
			t.Fatalf("Sign(%q, %d, %q) = %q", secret, ts, body, sig)
		}
		// The Signer signs twice, to show that its first use leaves no
		// state behind that changes the second.
		again := NewSigner(secret)
		if first, second := again.Sign(ts, body), again.Sign(ts, body); first != sig || second != sig {
			t.Fatalf("a reused Signer disagrees with Sign")
		}
		now := func() time.Time { return time.Unix(ts, 0) }
		header := func(sigs ...string) http.Header {
			h := http.Header{}
			h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
			for _, s := range sigs {
				h.Add(HeaderSignature, s)
			}
			return h
		}
		v := &Verifier{Secrets: []string{secret}, Now: now}
		err := v.Verify(header(sig), body)
		switch {
		case secret == "":
			if !errors.Is(err, ErrNoSecrets) {
				t.Fatalf("no secret: %v", err)
			}
			return
		case ts < 0:
			if !errors.Is(err, ErrInvalidTimestamp) {
				t.Fatalf("negative timestamp %d: %v", ts, err)
			}
			return
		case ts > 1<<40:
			if !errors.Is(err, ErrTimestampOutOfTolerance) {
				t.Fatalf("absurd timestamp %d: %v", ts, err)
			}
			return
		case err != nil:
			t.Fatalf("Verify of a fresh signature (secret %q, ts %d, body %q): %v", secret, ts, body, err)
		}
		tampered := append(bytes.Clone(body), 'x')
		if err := v.Verify(header(sig), tampered); !errors.Is(err, ErrSignatureMismatch) {
			t.Fatalf("a changed body verified: %v", err)
		}
		if err := (&Verifier{Secrets: []string{secret + "x"}, Now: now}).Verify(header(sig), body); !errors.Is(err, ErrSignatureMismatch) {
			t.Fatalf("another secret verified: %v", err)
		}
		flipped := sig[:len(sig)-1] + string("10"[sig[len(sig)-1]&1])
		if flipped == sig {
			flipped = sig[:len(sig)-1] + "f"
		}
		if err := v.Verify(header(flipped), body); !errors.Is(err, ErrSignatureMismatch) {
			t.Fatalf("a changed signature verified: %v", err)
		}
		// Hostile header values: anything but the true signature (among at
		// most 16 values) is refused with a documented error.
		err = v.Verify(header(hostile), body)
		known := []error{ErrMissingSignature, ErrSignatureMismatch}
		if err != nil && !slices.ContainsFunc(known, func(k error) bool { return errors.Is(err, k) }) {
			t.Fatalf("Verify with signature header %q: undocumented error %v", hostile, err)
		}
		if err == nil && !strings.Contains(hostile, sig) {
			t.Fatalf("signature header %q verified without the signature %s", hostile, sig)
		}
	})
}
