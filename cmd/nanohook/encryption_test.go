//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook/webhook"
)

// encKey is a fresh key as `openssl rand -base64 32` prints it, and its key
// id (the first 8 hex digits of its SHA-256), which messages name.
func encKey(t *testing.T) (key, kid string) {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return base64.StdEncoding.EncodeToString(raw), hex.EncodeToString(sum[:4])
}

// TestEncryptionAtRestAcrossRestarts runs real nanohook processes on one
// SQLite file through the operator's whole story: serve with a key, where
// deliveries are signed with the decrypted secret and sent to the decrypted
// URL, and the file never holds either (the URL's query carries a token); a
// key rotation ("new,old", `nanohook secrets reseal` while serve runs,
// then "new" alone) after which deliveries still verify; and a restart with
// a wrong key or none, which serve refuses with a message naming the key it
// lacks.
func TestEncryptionAtRestAcrossRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logDir := t.TempDir()
	db := filepath.Join(dir, "nanohook.db")
	oldKey, oldKid := encKey(t)
	newKey, newKid := encKey(t)
	const secret = "whsec_encryption_at_rest_0123456789"
	// Each URL's query holds a token found nowhere else: a customer's
	// credential for its receiver, as secret as the signing secret.
	urlToken, urlToken2 := randomToken(t), randomToken(t)

	// The receiver verifies every delivery with the plaintext secret: a
	// delivery signed with anything else (the sealed string, say) fails.
	type receipt struct {
		verified bool
		token    string
		task     string
	}
	got := make(chan receipt, 16)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		v := webhook.Verifier{Secrets: []string{secret}}
		err := v.Verify(r.Header, body)
		got <- receipt{verified: err == nil, token: r.URL.Query().Get("token"), task: string(body)}
	}))
	defer rcv.Close()

	addrs := freeAddrs(t, 2)
	n := &nodeProc{name: "enc", addr: addrs[0], adminAddr: addrs[1], logDir: logDir,
		args: []string{"serve", "--db", db, "--addr", addrs[0], "--admin-addr", addrs[1],
			"--allow-http", "--allow-private-targets", "--retry-schedule", "200ms", "--log-format", "json"}}
	t.Cleanup(func() {
		if err := n.kill(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Log(n.logTail(30))
		}
	})
	withKeys := func(keys string) []string {
		return childEnv("NANOHOOK_ADMIN_TOKEN="+testAdminToken, "NANOHOOK_ENCRYPTION_KEY="+keys)
	}
	run := func(keys string) {
		t.Helper()
		n.env = withKeys(keys)
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		if err := n.waitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stop := func() {
		t.Helper()
		if _, exit, err := n.terminate(30 * time.Second); err != nil || exit != nil {
			t.Fatalf("stop: %v, exit %v", err, exit)
		}
	}
	var accountID int64
	wantToken := urlToken
	publish := func(task string) {
		t.Helper()
		status, env := apiCall(t, "POST", "http://"+n.adminAddr+"/admin/v1/events", testAdminToken,
			fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":%q,"task_type":"image"}`, accountID, task))
		if status != http.StatusAccepted && status != http.StatusOK && status != http.StatusCreated {
			t.Fatalf("publish %s: %d %v", task, status, env)
		}
		select {
		case r := <-got:
			if !r.verified {
				t.Fatalf("delivery of %s does not verify with the endpoint's secret", task)
			}
			if !strings.Contains(r.task, task) {
				t.Fatalf("delivery %q is not of %s", r.task, task)
			}
			if r.token != wantToken {
				t.Fatalf("delivery of %s came with token %q, want %q: not sent to the endpoint's URL", task, r.token, wantToken)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no delivery of %s", task)
		}
	}
	// fileHolds reports whether the database file or its WAL contains s.
	fileHolds := func(s string) bool {
		t.Helper()
		found := false
		for _, p := range []string{db, db + "-wal"} {
			data, err := os.ReadFile(p)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			found = found || bytes.Contains(data, []byte(s))
		}
		return found
	}

	// 1. Serve with the old key; the endpoint's secret goes in sealed.
	run(oldKey)
	status, env := apiCall(t, "POST", "http://"+n.adminAddr+"/admin/v1/accounts", testAdminToken, `{"name":"enc"}`)
	if status != http.StatusCreated {
		t.Fatalf("create account: %d %v", status, env)
	}
	accountID = int64(dataOf(t, env)["id"].(float64))
	apiKey := dataOf(t, env)["api_key"].(string)
	status, env = apiCall(t, "POST", "http://"+n.addr+"/api/v1/webhooks", apiKey,
		fmt.Sprintf(`{"url":%q,"events":["job.completed"],"secret_key":%q}`, rcv.URL+"/hook?token="+urlToken, secret))
	if status != http.StatusCreated {
		t.Fatalf("create endpoint: %d %v", status, env)
	}
	endpointID := int64(dataOf(t, env)["id"].(float64))
	publish("task_before_rotation")
	if fileHolds(secret) {
		t.Fatal("the database file holds the endpoint's secret in plaintext")
	}
	if fileHolds(urlToken) {
		t.Fatal("the database file holds the token of the endpoint's URL in plaintext")
	}
	if !fileHolds("nhenc2:" + oldKid + ":") {
		t.Fatalf("the database file holds nothing sealed under key %s", oldKid)
	}

	// 2. Rotate keys: "new,old", reseal while serve runs, then "new" alone.
	stop()
	run(newKey + "," + oldKey)
	publish("task_during_rotation")
	var out bytes.Buffer
	reseal := exec.Command(os.Args[0], "secrets", "reseal", "--db", db)
	reseal.Env = withKeys(newKey + "," + oldKey)
	reseal.Stdout, reseal.Stderr = &out, &out
	if err := reseal.Run(); err != nil {
		t.Fatalf("secrets reseal: %v\n%s", err, out.String())
	}
	if want := fmt.Sprintf("resealed 1 endpoint(s) under key %s", newKid); !strings.Contains(out.String(), want) {
		t.Fatalf("secrets reseal printed %q, want %q", out.String(), want)
	}
	stop()
	run(newKey)
	publish("task_after_rotation")
	// A new URL, through the API, is sealed as the first was.
	status, env = apiCall(t, "PATCH", fmt.Sprintf("http://%s/api/v1/webhooks/%d", n.addr, endpointID), apiKey,
		fmt.Sprintf(`{"url":%q}`, rcv.URL+"/hook?token="+urlToken2))
	if status != http.StatusOK {
		t.Fatalf("change the endpoint's URL: %d %v", status, env)
	}
	wantToken = urlToken2
	publish("task_after_url_change")
	stop()
	for what, s := range map[string]string{"secret": secret, "first URL's token": urlToken, "second URL's token": urlToken2} {
		if fileHolds(s) {
			t.Fatalf("after the rotation the database file holds the endpoint's %s in plaintext", what)
		}
	}

	// 3. A wrong key, or none: serve refuses to start, naming the key it
	// lacks, and never prints a key.
	wrongKey, _ := encKey(t)
	for _, c := range []struct{ keys, want string }{
		{wrongKey, "encrypted with key " + newKid + ", which is not in NANOHOOK_ENCRYPTION_KEY"},
		{oldKey, "encrypted with key " + newKid + ", which is not in NANOHOOK_ENCRYPTION_KEY"},
		{"", "encrypted while NANOHOOK_ENCRYPTION_KEY is not set"},
	} {
		n.env = withKeys(c.keys)
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-n.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("serve with keys %q did not exit", c.keys)
		}
		if n.waitErr == nil {
			t.Fatal("serve started although it cannot decrypt the stored secrets")
		}
		log, _ := os.ReadFile(n.logs[len(n.logs)-1])
		if !strings.Contains(string(log), "refusing to start") || !strings.Contains(string(log), c.want) {
			t.Fatalf("serve's message does not explain the refusal (want %q):\n%s", c.want, log)
		}
		for _, k := range []string{oldKey, newKey, wrongKey, secret, urlToken, urlToken2} {
			if strings.Contains(string(log), k) {
				t.Fatalf("serve's log shows a key, the secret or a URL's token:\n%s", log)
			}
		}
	}
}

// randomToken is 32 random hex digits, found nowhere by chance.
func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "tok" + hex.EncodeToString(b)
}

// TestEncryptionKeyFlagErrors checks that a malformed key is refused
// before anything opens, by its position, without the value in the
// message (it would land in logs), and that reseal without a key says what
// to set.
func TestEncryptionKeyFlagErrors(t *testing.T) {
	t.Parallel()
	good, _ := encKey(t)
	const bad = "bm90LWEtMzItYnl0ZS1rZXk="
	env := map[string]string{"NANOHOOK_ENCRYPTION_KEY": good + "," + bad}
	_, err := parseServe(nil, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "NANOHOOK_ENCRYPTION_KEY (--encryption-key): key 2 of 2") ||
		strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), good) {
		t.Fatalf("serve with a malformed key: %v", err)
	}
	cfg, err := parseServe([]string{"--encryption-key", good}, func(string) string { return "" }, io.Discard)
	if err != nil || cfg.Keyring == nil {
		t.Fatalf("--encryption-key: %+v, %v", cfg.Keyring, err)
	}

	db := filepath.Join(t.TempDir(), "x.db")
	err = run(t.Context(), []string{"secrets", "reseal", "--db", db}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "NANOHOOK_ENCRYPTION_KEY") {
		t.Fatalf("secrets reseal without a key: %v", err)
	}
	var out bytes.Buffer
	getenv := func(k string) string {
		if k == "NANOHOOK_ENCRYPTION_KEY" {
			return good
		}
		return ""
	}
	if err := run(t.Context(), []string{"secrets", "check", "--db", db}, getenv, &out, io.Discard); err != nil {
		t.Fatalf("secrets check on an empty database: %v", err)
	}
	out.Reset()
	if err := run(t.Context(), []string{"secrets", "reseal", "--db", db}, getenv, &out, io.Discard); err != nil || !strings.Contains(out.String(), "resealed 0 endpoint(s)") {
		t.Fatalf("secrets reseal on an empty database: %q, %v", out.String(), err)
	}
}
