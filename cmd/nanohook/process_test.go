//go:build linux

// This file lets tests run nanohook as real operating-system processes: the
// test binary doubles as the nanohook binary (TestMain), and nodeProc starts,
// signals and watches one "nanohook serve" child. It is Linux-only because
// children are tied to the test process with Pdeathsig, so that even a test
// binary killed by its -timeout leaves no nanohook running.

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nanohook/nanohook/internal/skipnote"
)

// execMainEnv, set to 1 in a child's environment, makes the test binary run
// main() instead of the tests. Tests then start real nanohook processes from
// os.Args[0] without a separate go build, built with the same flags (-race
// included) as the tests themselves.
const execMainEnv = "NANOHOOK_TEST_EXEC_MAIN"

// TestMain runs the package's tests, or nanohook itself when this binary was
// started as a child by nodeProc.start.
func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		main() // exits 1 itself on failure
		os.Exit(0)
	}
	code := m.Run()
	skipnote.Report("github.com/nanohook/nanohook/cmd/nanohook")
	// Every child process has been waited for and every test server closed
	// by now: a goroutine still running is a leak in serve, the engine or a
	// test's cleanup.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left running after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// nodeProc is one "nanohook serve" child process. Its listen addresses stay
// the same across restarts; each incarnation writes its stdout and stderr to
// its own log file in logDir, which the caller keeps when a test fails.
//
// Only the test goroutine calls its methods; name, addr and adminAddr never
// change, so other goroutines may read them.
type nodeProc struct {
	name      string   // "node1", …: for messages and log file names
	addr      string   // public listener, host:port
	adminAddr string   // admin listener, host:port
	args      []string // the full command line after the binary
	env       []string // the child's complete environment
	logDir    string

	runs    int           // incarnations started so far
	id      string        // the node id of the current incarnation, from its start log line
	logs    []string      // log file of every incarnation, oldest first
	cmd     *exec.Cmd     // current incarnation
	done    chan struct{} // closed when the current incarnation exited
	waitErr error         // its exit status (nil: exit 0); valid once done is closed
}

// childEnv is this process's environment for a child nanohook: inherited
// NANOHOOK_* settings are dropped so that only the flags the test passes
// count, then the re-exec switch and extra are added.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NANOHOOK_") {
			env = append(env, kv)
		}
	}
	env = append(env, execMainEnv+"=1")
	return append(env, extra...)
}

// start launches a new incarnation. It does not wait for readiness; see
// waitReady.
func (n *nodeProc) start() error {
	if n.cmd != nil && !n.exited() {
		return fmt.Errorf("%s: already running", n.name)
	}
	n.runs++
	path := filepath.Join(n.logDir, fmt.Sprintf("%s.%d.log", n.name, n.runs))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(os.Args[0], n.args...)
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = f, f
	// Should the test binary die without running its cleanups (a -timeout
	// panic), the kernel kills the child with it. (Pdeathsig follows the
	// thread that forked; Go retires a thread only when a goroutine exits
	// locked to it, which nothing in these tests does.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: start: %w", n.name, err)
	}
	n.cmd, n.id, n.done, n.waitErr = cmd, "", make(chan struct{}), nil
	n.logs = append(n.logs, path)
	done := n.done
	go func() {
		err := cmd.Wait()
		f.Close()
		n.waitErr = err // published to readers by close(done)
		close(done)
	}()
	return nil
}

// exited reports whether the current incarnation has ended.
func (n *nodeProc) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// healthClient probes /healthz; a short timeout keeps a hung node from
// stalling the readiness loop.
var healthClient = &http.Client{Timeout: time.Second}

// waitReady waits until the current incarnation has logged its start line
// (which carries its node id) and both listeners answer /healthz, polling
// until ctx is done. A process that exits meanwhile is an error at once.
func (n *nodeProc) waitReady(ctx context.Context) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.exited() {
			return fmt.Errorf("%s exited before it was ready: %v", n.name, n.waitErr)
		}
		if n.id == "" {
			n.id = startLineNodeID(n.logs[len(n.logs)-1])
		}
		if n.id != "" && healthy(ctx, n.addr) && healthy(ctx, n.adminAddr) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", n.name, ctx.Err())
		case <-tick.C:
		}
	}
}

// healthy reports whether GET /healthz on addr answers 200.
func healthy(ctx context.Context, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// startLineNodeID returns the "node" field of the JSON "nanohook serving"
// line in a log file, or "" while there is none yet.
func startLineNodeID(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Node string `json:"node"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "nanohook serving" {
			return line.Node
		}
	}
	return ""
}

// kill ends the current incarnation with SIGKILL and waits until it is
// gone: no shutdown code runs, like a machine losing power.
func (n *nodeProc) kill() error {
	if n.cmd == nil || n.exited() {
		return nil
	}
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: SIGKILL: %w", n.name, err)
	}
	select {
	case <-n.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: still running 10s after SIGKILL", n.name)
	}
}

// terminate sends SIGTERM, as an orchestrator's rolling restart does, and
// waits up to within for the process to exit. It returns how long the exit
// took and the exit status (nil: exit 0); err reports a process that did not
// exit in time (it is then still running).
func (n *nodeProc) terminate(within time.Duration) (took time.Duration, exit error, err error) {
	if n.cmd == nil || n.exited() {
		return 0, nil, fmt.Errorf("%s is not running", n.name)
	}
	start := time.Now()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, nil, fmt.Errorf("%s: SIGTERM: %w", n.name, err)
	}
	select {
	case <-n.done:
		return time.Since(start), n.waitErr, nil
	case <-time.After(within):
		return time.Since(start), nil, fmt.Errorf("%s did not exit within %v of SIGTERM", n.name, within)
	}
}

// logTail returns the last lines of every incarnation's log, for failure
// reports.
func (n *nodeProc) logTail(lines int) string {
	var b strings.Builder
	for _, path := range n.logs {
		data, _ := os.ReadFile(path)
		all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(&b, "--- %s (last %d of %d lines)\n", path, min(lines, len(all)), len(all))
		b.WriteString(strings.Join(all[max(0, len(all)-lines):], "\n"))
		b.WriteString("\n")
	}
	return b.String()
}

// logCount counts the occurrences of s in the logs of all incarnations.
func (n *nodeProc) logCount(s string) int {
	count := 0
	for _, path := range n.logs {
		data, _ := os.ReadFile(path)
		count += bytes.Count(data, []byte(s))
	}
	return count
}

// freeAddrs returns n distinct loopback addresses whose ports nothing
// listens on right now. Children bind them a moment later; unlike port 0 the
// ports are fixed, so a restarted node comes back on the same addresses.
// All n listeners stay open until every port is chosen, so that the kernel
// cannot hand out one port twice.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}
