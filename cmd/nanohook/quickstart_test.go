//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's quick start uses these addresses; the test moves each to a
// free port so that it neither needs them free nor disturbs what uses them.
const (
	quickstartPublic = "127.0.0.1:8080"
	quickstartAdmin  = "127.0.0.1:8081"
	quickstartListen = "127.0.0.1:9000"
)

// quickstartBlocks returns the ```sh blocks of README.md's "Quick start
// with curl" section, in order.
func quickstartBlocks(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	const heading = "\n## Quick start with curl\n"
	start := strings.Index(text, heading)
	if start < 0 {
		t.Fatalf("README.md has no %q section", strings.TrimSpace(heading))
	}
	section := text[start+len(heading):]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var blocks []string
	for {
		_, rest, ok := strings.Cut(section, "\n```sh\n")
		if !ok {
			break
		}
		block, after, ok := strings.Cut(rest, "\n```\n")
		if !ok {
			t.Fatal("README.md's quick start has an unterminated ```sh block")
		}
		blocks = append(blocks, block)
		section = after
	}
	return blocks
}

// TestReadmeQuickStart pastes every shell block of README.md's quick start,
// in order, as a reader would: the blocks that start serve and listen run
// in the background (the reader's other terminals), the others one after
// the other in one bash session, so that the variables a block sets reach
// the next. Every curl must get a 2xx answer with "success":true, and the
// published event must reach the listen receiver and verify there.
func TestReadmeQuickStart(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("the quick start is curl commands, but curl is not on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	addrs := freeAddrs(t, 3)
	public, admin, listen := addrs[0], addrs[1], addrs[2]
	_, listenPort, _ := net.SplitHostPort(listen)
	rewrite := strings.NewReplacer(
		quickstartPublic, public,
		quickstartAdmin, admin,
		quickstartListen, listen,
		"--port 9000", "--port "+listenPort,
		"go run ./cmd/nanohook", `"$NANOHOOK_BIN"`,
	)
	// serve takes the moved addresses and a database of the test's own from
	// the environment twins of its flags, leaving its command line as the
	// README writes it.
	env := childEnv(
		"NANOHOOK_BIN="+os.Args[0],
		"NANOHOOK_DB="+filepath.Join(dir, "nanohook.db"),
		"NANOHOOK_ADDR="+public,
		"NANOHOOK_ADMIN_ADDR="+admin,
		"CURL_LOG="+filepath.Join(dir, "curl.log"),
	)

	blocks := quickstartBlocks(t)
	if len(blocks) < 8 {
		t.Fatalf("README.md's quick start has %d shell blocks; the test expects the whole tour (serve, listen, account, calls, publish, history, test, rotate, delete)", len(blocks))
	}
	var listenLog *os.File
	var session *bashSession
	published := false
	for i, block := range blocks {
		script := rewrite.Replace(block)
		for _, readme := range []string{":8080", ":8081", ":9000"} {
			if strings.Contains(script, readme) {
				t.Fatalf("block %d still uses the README's %s after rewriting (a new way of writing the address?):\n%s", i+1, readme, script)
			}
		}
		switch {
		case strings.Contains(block, "nanohook serve"):
			startBackground(t, filepath.Join(dir, "serve.log"), script, env)
			waitHealthy(t, ctx, admin)
			continue
		case strings.Contains(block, "nanohook listen"):
			listenLog = startBackground(t, filepath.Join(dir, "listen.log"), script, env)
			waitListening(t, ctx, listen)
			continue
		}
		if session == nil {
			session = startBashSession(t, env, dir)
		}
		answers := session.run(t, i+1, script)
		for _, a := range answers {
			var got struct {
				Success bool            `json:"success"`
				Data    json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal([]byte(a), &got); err != nil || !got.Success {
				t.Errorf("block %d: a curl answered %q, want success", i+1, a)
			}
			var publish struct {
				Deliveries *int `json:"deliveries"`
			}
			if strings.Contains(script, "/admin/v1/events") && json.Unmarshal(got.Data, &publish) == nil && publish.Deliveries != nil {
				published = true
				if *publish.Deliveries < 1 {
					t.Fatalf("block %d: the publish reported %d deliveries, want at least 1 (the endpoint registered above):\n%s", i+1, *publish.Deliveries, script)
				}
			}
		}
		if strings.Contains(script, "/admin/v1/events") {
			// The reader watches it arrive in the listen terminal.
			waitFor(t, ctx, listenLog, "signature verified")
		}
	}
	if !published {
		t.Error("no block of the quick start published an event")
	}
	if listenLog == nil {
		t.Error("no block of the quick start started nanohook listen")
	}
}

// startBackground runs script in bash as a terminal of its own would,
// writing its output to logPath, and stops it when the test ends.
func startBackground(t *testing.T, logPath, script string, env []string) *os.File {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", "set -e\n"+script)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so that stopping it stops what bash started;
	// Pdeathsig reaps bash should the test binary die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s:\n%s", filepath.Base(logPath), out)
		}
		f.Close()
	})
	return f
}

// waitHealthy waits until serve's admin listener answers /healthz.
func waitHealthy(t *testing.T, ctx context.Context, admin string) {
	t.Helper()
	for readyStatus(admin) != 200 {
		select {
		case <-ctx.Done():
			t.Fatalf("serve did not become ready on %s", admin)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitListening waits until something accepts connections on addr.
func waitListening(t *testing.T, ctx context.Context, addr string) {
	t.Helper()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("listen did not accept connections on %s: %v", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitFor waits, 10 seconds at most, until the file f writes to holds want.
func waitFor(t *testing.T, ctx context.Context, f *os.File, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if f == nil {
		t.Fatal("an event was published before listen was started")
	}
	for {
		out, _ := os.ReadFile(f.Name())
		if bytes.Contains(out, []byte(want)) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("listen never printed %q:\n%s", want, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// bashSession is one bash process that runs blocks one after the other,
// as a reader pastes them into one terminal.
type bashSession struct {
	stdin   io.WriteCloser
	out     *bufio.Reader
	curlLog string
}

// quickstartPrelude sets the session up: curl becomes a function that
// fails on a non-2xx answer and logs each answer on a line of its own, and
// a variable used before a block set it is an error.
const quickstartPrelude = `set -u -o pipefail
curl() {
	local out
	if ! out=$(command curl --fail-with-body --max-time 10 "$@"); then
		printf 'curl %s failed: %s\n' "$*" "$out" >> "$CURL_LOG.failed"
	fi
	printf '%s\n' "$out" >> "$CURL_LOG"
	printf '%s' "$out"
}
`

func startBashSession(t *testing.T, env []string, dir string) *bashSession {
	t.Helper()
	cmd := exec.Command("bash")
	cmd.Env = env
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); pw.Close(); close(done) }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		pr.Close()
	})
	s := &bashSession{stdin: stdin, out: bufio.NewReader(pr), curlLog: filepath.Join(dir, "curl.log")}
	if _, err := io.WriteString(stdin, quickstartPrelude); err != nil {
		t.Fatal(err)
	}
	return s
}

// run pastes one block, waits for it to finish and returns the answers of
// its curl calls. It fails the test when a curl failed or bash quit.
func (s *bashSession) run(t *testing.T, n int, script string) []string {
	t.Helper()
	os.Remove(s.curlLog)
	os.Remove(s.curlLog + ".failed")
	marker := fmt.Sprintf("quickstart-block-%d-done", n)
	if _, err := fmt.Fprintf(s.stdin, "%s\nprintf '\\n%%s\\n' %s\n", script, marker); err != nil {
		t.Fatalf("block %d: bash is gone: %v", n, err)
	}
	var output strings.Builder
	lines := make(chan error, 1)
	go func() {
		for {
			line, err := s.out.ReadString('\n')
			output.WriteString(line)
			if err != nil {
				lines <- err
				return
			}
			if strings.TrimSpace(line) == marker {
				lines <- nil
				return
			}
		}
	}()
	select {
	case err := <-lines:
		if err != nil {
			t.Fatalf("block %d: bash quit (%v):\n%s\noutput:\n%s", n, err, script, output.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("block %d did not finish within 30s:\n%s", n, script)
	}
	if failed, err := os.ReadFile(s.curlLog + ".failed"); err == nil {
		t.Errorf("block %d:\n%s\n%s", n, script, failed)
	}
	logged, _ := os.ReadFile(s.curlLog)
	var answers []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(logged)), "\n") {
		if line != "" {
			answers = append(answers, line)
		}
	}
	if len(answers) == 0 {
		t.Errorf("block %d ran no curl:\n%s\noutput:\n%s", n, script, output.String())
	}
	return answers
}
