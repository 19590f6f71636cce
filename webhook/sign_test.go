package webhook

import (
	"strings"
	"testing"
)

// signVector was computed with Node.js:
//
//	crypto.createHmac('sha256', secret).update(ts + '.' + body).digest('hex')
//
// The body is what JSON.stringify(JSON.parse(...)) printed, with a literal
// U+2028, an escaped quote and newline, 1e+21 and an escaped lone surrogate;
// the secret holds non-ASCII characters, keyed as UTF-8.
var signVector = struct {
	secret, oldSecret string
	ts                int64
	body              string
	sig, oldSig       string
}{
	secret:    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/ßé",
	oldSecret: "whsec_old",
	ts:        1734948000,
	body:      "{\"event\":\"job.completed\",\"task_id\":\"task_é😀\",\"task_type\":\"image\",\"status\":\"completed\",\"data\":{\"note\":\"<b>&amp;\u2028\\\"q\\\"</b>\\n\",\"big\":1e+21,\"lone\":\"\\ud800\"},\"timestamp\":\"2024-12-23T10:00:00Z\"}",
	sig:       "v1=08260a5a3dec729924e1864e764a041af3053a03596f33c58a42865ab12513c7",
	oldSig:    "v1=e9f4f7a2d0eb9633e4139be09f65d41c00aa7d578c413cd6100b21033ca7de80",
}

func TestSignKnownVector(t *testing.T) {
	t.Parallel()
	v := signVector
	if got := Sign(v.secret, v.ts, []byte(v.body)); got != v.sig {
		t.Errorf("Sign = %s, want %s", got, v.sig)
	}
	if got := Sign(v.oldSecret, v.ts, []byte(v.body)); got != v.oldSig {
		t.Errorf("Sign(old secret) = %s, want %s", got, v.oldSig)
	}
}

// TestSignVectorBodyIsEncodePayload ties the vector to the encoder: the body
// node printed is exactly what EncodePayload builds from the same fields.
func TestSignVectorBodyIsEncodePayload(t *testing.T) {
	t.Parallel()
	body, err := EncodePayload(Payload{
		Event: EventJobCompleted, TaskID: "task_é😀", TaskType: "image", Status: StatusCompleted,
		Data:      []byte(`{ "note": "<b>&amp;\u2028\"q\"</b>\n", "big": 1e21, "lone": "\ud800" }`),
		Timestamp: "2024-12-23T10:00:00Z",
	})
	if err != nil || string(body) != signVector.body {
		t.Fatalf("EncodePayload = %q, %v\nwant %q", body, err, signVector.body)
	}
}

func TestSignerReuse(t *testing.T) {
	t.Parallel()
	s := NewSigner(signVector.secret)
	for i := 0; i < 3; i++ { // the reused HMAC state must be reset each time
		if got := s.Sign(signVector.ts, []byte(signVector.body)); got != signVector.sig {
			t.Fatalf("round %d: Signer.Sign = %s, want %s", i, got, signVector.sig)
		}
		if got := s.Sign(signVector.ts+1, []byte(signVector.body)); got == signVector.sig {
			t.Fatalf("round %d: another timestamp gave the same signature", i)
		}
	}
	got := s.AppendSign([]byte("X-Nano-Signature: "), signVector.ts, []byte(signVector.body))
	if string(got) != "X-Nano-Signature: "+signVector.sig {
		t.Errorf("AppendSign = %q", got)
	}
	if got := Sign("k", 0, nil); !strings.HasPrefix(got, "v1=") || len(got) != 67 || strings.ToLower(got) != got {
		t.Errorf("Sign of an empty body = %q, want v1= and 64 lowercase hex digits", got)
	}
}
