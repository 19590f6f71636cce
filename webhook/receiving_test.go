package webhook

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook/internal/skipnote"
)

// receivingGuide is the receivers' guide whose Node.js samples
// TestReceivingSamples runs as written.
const receivingGuide = "../docs/RECEIVING.md"

// expressModules holds what the Express samples require; .ci/run installs
// it from package-lock.json.
const expressModules = "testdata/express/node_modules"

// guideJS returns the ```js blocks of the guide's section headed heading,
// joined into one program.
func guideJS(t *testing.T, heading string) string {
	t.Helper()
	raw, err := os.ReadFile(receivingGuide)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s has no section %q", receivingGuide, heading)
	}
	if end := strings.Index(section, "\n#"); end >= 0 {
		section = section[:end]
	}
	var code []string
	for {
		_, rest, ok := strings.Cut(section, "\n```js\n")
		if !ok {
			break
		}
		block, after, ok := strings.Cut(rest, "\n```\n")
		if !ok {
			t.Fatalf("%s: unterminated ```js block in %q", receivingGuide, heading)
		}
		code = append(code, block)
		section = after
	}
	if len(code) == 0 {
		t.Fatalf("%s: no ```js block in %q", receivingGuide, heading)
	}
	return strings.Join(code, "\n")
}

// requireExpress returns the absolute path of the samples' node_modules, or
// skips the test when Express is not installed (fails it under CI, whose
// .ci/run installs it).
func requireExpress(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("the receiving guide's samples run in Node.js, but `node` is not in PATH (%v)", err)
	}
	dir, err := filepath.Abs(expressModules)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "express", "package.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Express is not installed in webhook/%s (%v), but CI is set and .ci/run installs it", expressModules, err)
		}
		skipnote.Skip(t, "the Express samples of docs/RECEIVING.md", "npm ci --prefix webhook/testdata/express")
	}
	return dir
}

// listenCall is how the samples start listening, on a fixed port.
var listenCall = regexp.MustCompile(`app\.listen\([0-9]+\);`)

// The one line of each sample that sets its secrets.
const guideSecrets = "const secrets = [process.env.NANO_WEBHOOK_SECRET];"

// startSample runs code, an Express sample of the guide, with secrets as
// its list of secrets and returns its URL. Two lines are changed, each
// found exactly: the secrets come from the test instead of the one
// NANO_WEBHOOK_SECRET, and the server listens on a free loopback port and
// prints it instead of port 3000.
func startSample(t *testing.T, modules, code string, secrets []string) string {
	t.Helper()
	if strings.Count(code, guideSecrets) != 1 {
		t.Fatalf("the sample does not set its secrets with %q once:\n%s", guideSecrets, code)
	}
	list, _ := json.Marshal(secrets)
	code = strings.Replace(code, guideSecrets, "const secrets = JSON.parse(process.env.NANO_TEST_SECRETS);", 1)
	if len(listenCall.FindAllString(code, -1)) != 1 {
		t.Fatalf("the sample does not call app.listen(PORT) once:\n%s", code)
	}
	code = listenCall.ReplaceAllLiteralString(code,
		"const server = app.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));")
	path := filepath.Join(t.TempDir(), "sample.js")
	if err := os.WriteFile(path, []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", path)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "NANO_TEST_SECRETS="+string(list))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("the sample did not start: %v\n%s", err, stderr.String())
	}
	go io.Copy(io.Discard, out) // what the sample logs per delivery
	var hello struct{ Port int }
	if err := json.Unmarshal([]byte(line), &hello); err != nil || hello.Port == 0 {
		t.Fatalf("the sample printed %q", line)
	}
	return "http://127.0.0.1:" + strconv.Itoa(hello.Port) + "/webhooks/nano"
}

// guideDelivery is one request as nanohook sends it.
type guideDelivery struct {
	body              []byte
	secret, previous  string // signing secrets; previous empty: no X-Nano-Signature-Previous
	tamperAfterSigned bool
}

// post sends d to url, signed now, and returns the answer's status.
func (d guideDelivery) post(t *testing.T, url string) int {
	t.Helper()
	ts := time.Now().Unix()
	body := d.body
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(d.secret, ts, body))
	if d.previous != "" {
		req.Header.Set(HeaderSignaturePrevious, Sign(d.previous, ts, body))
	}
	if d.tamperAfterSigned {
		body = bytes.Replace(body, []byte("task_"), []byte("tasc_"), 1)
	}
	req.Header.Set(HeaderEventID, fmt.Sprintf("evt_guide_%d", time.Now().UnixNano()))
	req.Header.Set(HeaderEvent, EventJobCompleted)
	req.Header.Set(HeaderDeliveryAttempt, "1")
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// eventOfSize is a canonical job.completed body of exactly size bytes.
func eventOfSize(t *testing.T, size int) []byte {
	t.Helper()
	p := Payload{Event: EventJobCompleted, TaskID: "task_guide", TaskType: "image", Status: StatusCompleted,
		Timestamp: "2024-12-23T10:00:00Z"}
	data := func(caption string) json.RawMessage {
		return json.RawMessage(`{"url":"https://cdn.example.com/image.png","credits_charged":6,"caption":"` + caption + `"}`)
	}
	p.Data = data("")
	empty, err := EncodePayload(p)
	if err != nil {
		t.Fatal(err)
	}
	p.Data = data(strings.Repeat("a", size-len(empty)))
	body, err := EncodePayload(p)
	if err != nil || len(body) != size {
		t.Fatalf("event of %d bytes: %d bytes, %v", size, len(body), err)
	}
	return body
}

// TestReceivingSamples runs the Express samples of docs/RECEIVING.md in
// real Node.js: each takes every delivery nanohook may send, up to its
// largest body (Express's default limit of 100 kB would answer 413 from
// about a tenth of that), and each keeps verifying through a secret
// rotation whichever of the secrets in force it is given.
func TestReceivingSamples(t *testing.T) {
	t.Parallel()
	modules := requireExpress(t)
	const oldSecret, newSecret = "whsec_guide_old_secret", "whsec_guide_new_secret"
	small := eventOfSize(t, 300)
	var (
		// A rotation: first the old secret alone, then during the overlap
		// the new one with the old one's signature beside it, then the new
		// one alone.
		before  = guideDelivery{body: small, secret: oldSecret}
		overlap = guideDelivery{body: small, secret: newSecret, previous: oldSecret}
		after   = guideDelivery{body: small, secret: newSecret}
	)
	for _, sample := range []struct{ name, heading string }{
		{"raw body", "### Node.js, raw body (preferred)"},
		{"original documentation's way", "### Node.js, the original documentation's way"},
	} {
		t.Run(sample.name, func(t *testing.T) {
			t.Parallel()
			code := guideJS(t, sample.heading)
			rotating := startSample(t, modules, code, []string{newSecret, oldSecret})
			for _, size := range []int{200_000, MaxPayloadBytes} {
				d := guideDelivery{body: eventOfSize(t, size), secret: newSecret, previous: oldSecret}
				if got := d.post(t, rotating); got != http.StatusOK {
					t.Errorf("an event of %d bytes: %d, want 200", size, got)
				}
			}
			tampered := overlap
			tampered.tamperAfterSigned = true
			if got := tampered.post(t, rotating); got != http.StatusUnauthorized {
				t.Errorf("a body changed after signing: %d, want 401", got)
			}
			for _, c := range []struct {
				secrets []string
				want    [3]int // before, overlap, after
			}{
				{[]string{newSecret, oldSecret}, [3]int{200, 200, 200}},
				{[]string{oldSecret}, [3]int{200, 200, 401}}, // not switched yet: fine until the overlap ends
				{[]string{newSecret}, [3]int{401, 200, 200}},
				{[]string{"whsec_guide_wrong_secret"}, [3]int{401, 401, 401}},
			} {
				url := startSample(t, modules, code, c.secrets)
				for i, d := range []guideDelivery{before, overlap, after} {
					if got := d.post(t, url); got != c.want[i] {
						t.Errorf("secrets %q, delivery %s the rotation: %d, want %d",
							c.secrets, [3]string{"before", "during", "after"}[i], got, c.want[i])
					}
				}
			}
		})
	}
}

// TestGuideKeepsDocumentedVerifySignature: the guide's "original
// documentation's way" keeps the documented verifySignature as it is (the
// one cmd/nanohook's end-to-end tests run against real deliveries), its
// arguments in their documented order.
func TestGuideKeepsDocumentedVerifySignature(t *testing.T) {
	t.Parallel()
	fn := regexp.MustCompile(`(?s)function verifySignature\(.*?\n}\n`)
	documented, err := os.ReadFile("../cmd/nanohook/testdata/receiver.js")
	if err != nil {
		t.Fatal(err)
	}
	want := fn.FindString(string(documented))
	got := fn.FindString(guideJS(t, "### Node.js, the original documentation's way") + "\n")
	if want == "" || got != want {
		t.Errorf("the guide's verifySignature differs from the documented one:\n%s\nwant:\n%s", got, want)
	}
}
