package webhook_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook/webhook"
)

var update = flag.Bool("update", false, "rewrite docs/signature-vectors.json from vectorInputs before checking it")

// vectorsFile is the published test vectors, for anyone checking their own
// verifier against nanohook's signatures.
const vectorsFile = "../docs/signature-vectors.json"

// vector is one entry of the vectors file.
type vector struct {
	Name            string `json:"name"`
	Secret          string `json:"secret"`
	Timestamp       int64  `json:"timestamp"`
	Body            string `json:"body"`
	SignatureHeader string `json:"signature_header"`
	Note            string `json:"note"`
}

// vectorInput is how one vector is made: the job data is written the way a
// publisher might send it (escapes, exponents, any key order), and the body
// is what nanohook would deliver for it.
type vectorInput struct {
	name, note, secret string
	ts                 int64
	event, data        string
	taskID             string // "": task_<position>
}

const (
	vectorTS     = 1734948000 // 2024-12-23T10:00:00Z
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

var vectorInputs = []vectorInput{
	{name: "documented example", secret: "whsec_test", ts: vectorTS, event: webhook.EventJobCompleted, taskID: "task_123",
		data: `{"url":"https://cdn.example.com/image.png","credits_charged":6}`,
		note: "The documentation's example body; the webhook package's ExampleSign prints the same signature."},
	{name: "job failed", secret: vectorSecret, ts: vectorTS + 1, event: webhook.EventJobFailed,
		data: `{"error":"model timeout","credits_charged":0}`,
		note: "status is \"failed\" for job.failed."},
	{name: "empty data", secret: vectorSecret, ts: vectorTS + 2, event: webhook.EventJobCompleted, data: ``,
		note: "A job published without data is delivered with \"data\":{}."},
	{name: "HTML characters", secret: vectorSecret, ts: vectorTS + 3, event: webhook.EventJobCompleted,
		data: `{"caption":"\u003cb\u003ecats\u003c/b\u003e \u0026 \"dogs\" 'quoted'","url":"https://x.example/?a=1&b=2"}`,
		note: "<, > and & are sent as themselves, never as \\u003c: serialisers that escape HTML (Go's encoding/json, PHP's json_encode without flags) produce other bytes."},
	{name: "line and paragraph separators", secret: vectorSecret, ts: vectorTS + 4, event: webhook.EventJobCompleted,
		data: `{"text":"line\u2028para\u2029end"}`,
		note: "U+2028 and U+2029 are sent unescaped, as UTF-8 bytes (E2 80 A8, E2 80 A9), as JSON.stringify does. This file, being JSON, may show them as \\u2028 escapes; the body holds the characters."},
	{name: "non-BMP emoji", secret: vectorSecret, ts: vectorTS + 5, event: webhook.EventJobCompleted,
		data: `{"prompt":"café 日本語 \ud83d\ude00👍🏽 👩‍👩‍👧"}`,
		note: "Characters beyond U+FFFF are sent as 4-byte UTF-8, never as \\ud83d\\ude00 surrogate escapes; ZWJ sequences are kept as they are."},
	{name: "lone surrogate escapes", secret: vectorSecret, ts: vectorTS + 6, event: webhook.EventJobCompleted,
		data: `{"lone_high":"\ud800","lone_low":"x\udfffy","pair":"\uD83D\uDE00"}`,
		note: "A lone surrogate cannot be UTF-8, so it stays the 6-character escape \\ud800 (lowercase hex), as JSON.stringify writes it; a valid pair becomes the character."},
	{name: "control characters", secret: vectorSecret, ts: vectorTS + 7, event: webhook.EventJobCompleted,
		data: `{"c":"\u0000\u001f\b\f\n\r\t\/","del":"\u007f"}`,
		note: "Control characters use the short escapes where JSON has them and \\u00XX (lowercase) otherwise; DEL (U+007F) and / are sent as themselves."},
	{name: "integer-like keys", secret: vectorSecret, ts: vectorTS + 8, event: webhook.EventJobCompleted,
		data: `{"b":1,"10":2,"a":3,"2":4,"01":5,"4294967295":6,"4294967294":7}`,
		note: "JavaScript lists array-index keys (0 to 4294967294) first, in numeric order, then the other keys in insertion order; \"01\" and \"4294967295\" are not indexes. Re-serialise in a language that keeps insertion order and this body changes: verify the raw body."},
	{name: "numbers", secret: vectorSecret, ts: vectorTS + 9, event: webhook.EventJobCompleted,
		data: `{"big":1e21,"small":1.5e-7,"negative_zero":-0,"tiny":5e-324,"trailing_zero":1.50,"exponent":1E5,"max_safe":9007199254740991}`,
		note: "JavaScript's number formatting: 1e21 is 1e+21, 1.5e-7 stays 1.5e-7, -0 is 0, 5e-324 stays 5e-324, 1.50 is 1.5, 1E5 is 100000."},
	{name: "secret with spaces and non-ASCII", secret: "a spaced secret ✓ café", ts: vectorTS + 10, event: webhook.EventJobCompleted,
		data: `{"url":"https://cdn.example.com/image.png","credits_charged":6}`,
		note: "The HMAC key is the UTF-8 bytes of the secret exactly as shown: no trimming, no normalisation, no base64 decoding (whsec_ secrets are keyed with their prefix too)."},
}

// TestSignatureVectors keeps docs/signature-vectors.json true: it is what
// vectorInputs make, every body is canonical, and Sign, Verifier and Node.js
// (verifying the raw body, and verifying JSON.stringify(JSON.parse(body)) as
// the original documentation does) all agree with every signature.
func TestSignatureVectors(t *testing.T) {
	want := makeVectors(t)
	if *update {
		writeVectors(t, want)
	}
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("%v (create it with: go test ./webhook -run TestSignatureVectors -update)", err)
	}
	var got []vector
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%s: %v", vectorsFile, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s has %d vectors, vectorInputs make %d (run with -update after changing them)", vectorsFile, len(got), len(want))
	}
	for i, v := range got {
		if v != want[i] {
			t.Errorf("%s[%d] %q differs from what vectorInputs make (run with -update after changing them):\n file %+v\n want %+v",
				vectorsFile, i, v.Name, v, want[i])
		}
		t.Run(v.Name, func(t *testing.T) { checkVector(t, v) })
	}
	checkCoverage(t, got)

	for _, r := range verifyInNode(t) {
		if !r.RawOK || !r.DocOK || !r.RoundTrip || r.Error != "" {
			t.Errorf("node, vector %q: raw body verifies %v, JSON.stringify(JSON.parse(body)) verifies %v, body is its own round trip %v, error %q",
				r.Name, r.RawOK, r.DocOK, r.RoundTrip, r.Error)
		}
	}
}

// makeVectors builds the vectors exactly as nanohook builds deliveries: the
// data canonicalised into the payload by EncodePayload, signed by Sign.
func makeVectors(t *testing.T) []vector {
	t.Helper()
	out := make([]vector, 0, len(vectorInputs))
	for _, in := range vectorInputs {
		taskID := in.taskID
		if taskID == "" {
			taskID = "task_" + strconv.Itoa(len(out)+1)
		}
		status := webhook.StatusCompleted
		if in.event == webhook.EventJobFailed {
			status = webhook.StatusFailed
		}
		body, err := webhook.EncodePayload(webhook.Payload{
			Event: in.event, TaskID: taskID, TaskType: "image", Status: status,
			Data: []byte(in.data), Timestamp: time.Unix(in.ts, 0).UTC().Format(time.RFC3339),
		})
		if err != nil {
			t.Fatalf("vector %q: %v", in.name, err)
		}
		out = append(out, vector{
			Name: in.name, Secret: in.secret, Timestamp: in.ts, Body: string(body),
			SignatureHeader: webhook.Sign(in.secret, in.ts, body), Note: in.note,
		})
	}
	return out
}

func writeVectors(t *testing.T, vs []vector) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the file is read by people: keep <, > and & legible
	enc.SetIndent("", "  ")
	if err := enc.Encode(vs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsFile, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d vectors to %s", len(vs), vectorsFile)
}

// checkVector checks one vector with the Go side of the package.
func checkVector(t *testing.T, v vector) {
	body := []byte(v.Body)
	canon, err := webhook.Canonicalize(body)
	if err != nil || !bytes.Equal(canon, body) {
		t.Errorf("body is not canonical (%v):\n body %s\n want %s", err, body, canon)
	}
	if _, err := webhook.ParsePayload(body); err != nil {
		t.Errorf("ParsePayload: %v", err)
	}
	if got := webhook.Sign(v.Secret, v.Timestamp, body); got != v.SignatureHeader {
		t.Errorf("Sign = %s, file says %s", got, v.SignatureHeader)
	}
	h := http.Header{}
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(v.Timestamp, 10))
	h.Set(webhook.HeaderSignature, v.SignatureHeader)
	at := webhook.Verifier{Secrets: []string{v.Secret}, Now: func() time.Time { return time.Unix(v.Timestamp, 0) }}
	if err := at.Verify(h, body); err != nil {
		t.Errorf("Verifier at the vector's timestamp: %v", err)
	}
	// The signature covers the timestamp: the same header one second later
	// is another message.
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(v.Timestamp+1, 10))
	if err := at.Verify(h, body); err == nil {
		t.Error("Verifier accepted the signature with another timestamp")
	}
}

// checkCoverage makes sure the file keeps the bodies that break naive
// verifiers, whatever vectors are added or renamed later.
func checkCoverage(t *testing.T, vs []vector) {
	t.Helper()
	need := map[string]func(v vector) bool{
		"HTML characters <>&":         func(v vector) bool { return strings.Contains(v.Body, "<b>") && strings.Contains(v.Body, "&") },
		"U+2028 and U+2029 unescaped": func(v vector) bool { return strings.Contains(v.Body, "\u2028") && strings.Contains(v.Body, "\u2029") },
		"a non-BMP character":         func(v vector) bool { return strings.Contains(v.Body, "😀") },
		"a lone-surrogate escape":     func(v vector) bool { return strings.Contains(v.Body, `\ud800`) },
		"integer-like keys reordered": func(v vector) bool { return strings.Contains(v.Body, `{"2":4,"10":2,`) },
		"1e+21":                       func(v vector) bool { return strings.Contains(v.Body, ":1e+21") },
		"1.5e-7":                      func(v vector) bool { return strings.Contains(v.Body, ":1.5e-7") },
		"-0 as 0":                     func(v vector) bool { return strings.Contains(v.Body, `"negative_zero":0,`) },
		"5e-324":                      func(v vector) bool { return strings.Contains(v.Body, ":5e-324") },
		"empty data":                  func(v vector) bool { return strings.Contains(v.Body, `"data":{}`) },
		"the signature ExampleSign prints": func(v vector) bool {
			return v.SignatureHeader == "v1=2193702030bf781e76f1bb8e14d52db9d843b9471f274bfe3ef6b4df682503aa"
		},
		"a secret with spaces and non-ASCII": func(v vector) bool {
			return strings.Contains(v.Secret, " ") && strings.ContainsFunc(v.Secret, func(r rune) bool { return r > 127 })
		},
	}
	for what, has := range need {
		found := false
		for _, v := range vs {
			found = found || has(v)
		}
		if !found {
			t.Errorf("no vector has %s", what)
		}
	}
}

// nodeVerdict is what Node.js made of one vector.
type nodeVerdict struct {
	Name      string `json:"name"`
	RawOK     bool   `json:"raw_ok"`
	DocOK     bool   `json:"doc_ok"`
	RoundTrip bool   `json:"round_trip"`
	Error     string `json:"error"`
}

// nodeVectorCheck verifies every vector of the file named by its argument
// the two ways a Node.js receiver does: HMAC over the raw body bytes, and
// HMAC over JSON.stringify(JSON.parse(body)) as the original documentation's
// verifySignature does.
const nodeVectorCheck = `
const fs = require('fs');
const crypto = require('crypto');
const vectors = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));
const sign = (secret, message) => 'v1=' + crypto.createHmac('sha256', secret).update(message).digest('hex');
process.stdout.write(JSON.stringify(vectors.map((v) => {
  const out = { name: v.name, raw_ok: false, doc_ok: false, round_trip: false, error: '' };
  const raw = Buffer.from(v.body, 'utf8');
  out.raw_ok = sign(v.secret, Buffer.concat([Buffer.from(v.timestamp + '.'), raw])) === v.signature_header;
  try {
    const payload = JSON.parse(raw.toString('utf8'));
    out.doc_ok = sign(v.secret, v.timestamp + '.' + JSON.stringify(payload)) === v.signature_header;
    out.round_trip = JSON.stringify(payload) === v.body;
  } catch (e) {
    out.error = String(e);
  }
  return out;
})));
`

func verifyInNode(t *testing.T) []nodeVerdict {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("the vectors are checked in Node.js, but `node` is not in PATH (%v); install Node.js to run this test", err)
	}
	path, err := filepath.Abs(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), node, "-e", nodeVectorCheck, path).Output()
	if err != nil {
		t.Fatalf("node: %v %s", err, stderrOf(err))
	}
	var verdicts []nodeVerdict
	if err := json.Unmarshal(out, &verdicts); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	if len(verdicts) != len(vectorInputs) {
		t.Fatalf("node checked %d vectors, want %d", len(verdicts), len(vectorInputs))
	}
	return verdicts
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
