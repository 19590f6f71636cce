//go:build linux

package main

// A flood of idle connections on the public listener (issue 13, item 7):
// before the connection limits, 20,000 idle keep-alive connections took
// every file descriptor of the process, and /healthz and admin publishes
// timed out with them. Here the child's open-file limit is lowered to 2048
// and one address opens 3000 connections: over the per-address cap, and
// over what the process could hold at all.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// setFileLimit sets process pid's open-file limit, soft and hard, as
// prlimit(1) does.
func setFileLimit(pid int, n uint64) error {
	lim := syscall.Rlimit{Cur: n, Max: n}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_NOFILE),
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// startFileLimitedChild is startSQLiteChild with the child's open-file
// limit set to files right after it starts: well before its serve reads
// the limit to size its connection caps, which the test checks in its log.
func startFileLimitedChild(t *testing.T, name string, files uint64, flags ...string) *sqliteChild {
	t.Helper()
	dir := t.TempDir()
	addrs := freeAddrs(t, 2)
	c := &sqliteChild{
		nodeProc: &nodeProc{
			name: name, addr: addrs[0], adminAddr: addrs[1], logDir: dir,
			env: childEnv("NANOHOOK_ADMIN_TOKEN=" + relAdminToken),
		},
		db: filepath.Join(t.TempDir(), "nanohook.db"),
	}
	c.args = append([]string{"serve", "--db", c.db, "--addr", c.addr, "--admin-addr", c.adminAddr,
		"--allow-http", "--allow-private-targets", "--log-format", "json"}, flags...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s:\n%s", c.name, c.logTail(40))
		}
	})
	t.Cleanup(func() {
		if err := c.kill(); err != nil {
			t.Error(err)
		}
	})
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	if err := setFileLimit(c.cmd.Process.Pid, files); err != nil {
		t.Skipf("cannot set the child's open-file limit: %v", err)
	}
	c.mustBeReady(t)
	return c
}

// logLine returns the fields of the first JSON log line of c with message
// msg, or nil.
func (c *sqliteChild) logLine(msg string) map[string]any {
	for _, path := range c.logs {
		data, _ := os.ReadFile(path)
		for line := range bytes.Lines(data) {
			var m map[string]any
			if json.Unmarshal(line, &m) == nil && m["msg"] == msg {
				return m
			}
		}
	}
	return nil
}

// openFiles counts the file descriptors process pid holds.
func openFiles(pid int) int {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(fds)
}

// floodResult is what a flood of connections from one address got.
type floodResult struct {
	served     int // answered 200, then held open and idle
	refused    int // answered 429 or 503, or closed, at once
	unanswered int // no answer within floodAnswerBound, held open
	dialFailed int
	statuses   map[int]int
	conns      []net.Conn // the connections held open
	took       time.Duration
}

// floodAnswerBound is how long a flood connection waits for its answer.
const floodAnswerBound = 3 * time.Second

// flood opens n connections to addr from the loopback address local, 64
// at a time; each sends GET /healthz, reads the answer and, when served
// or unanswered, is held open (idle) until the test ends.
func flood(t *testing.T, addr, local string, n int) *floodResult {
	t.Helper()
	r := &floodResult{statuses: map[int]int{}}
	var mu sync.Mutex
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			for range jobs {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: floodAnswerBound}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					mu.Lock()
					r.dialFailed++
					mu.Unlock()
					continue
				}
				_ = c.SetDeadline(time.Now().Add(floodAnswerBound))
				status := 0
				_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n")
				if err == nil {
					var resp *http.Response
					if resp, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						status = resp.StatusCode
					}
				}
				var ne net.Error
				timedOut := errors.As(err, &ne) && ne.Timeout()
				_ = c.SetDeadline(time.Time{})
				mu.Lock()
				r.statuses[status]++
				switch {
				case status == http.StatusOK:
					r.served++
					r.conns = append(r.conns, c)
				case timedOut:
					r.unanswered++
					r.conns = append(r.conns, c)
				default:
					r.refused++
					_ = c.Close()
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	r.took = time.Since(start)
	t.Cleanup(func() {
		for _, c := range r.conns {
			_ = c.Close()
		}
	})
	return r
}

func (r *floodResult) String() string {
	return fmt.Sprintf("served and held %d, refused %d, unanswered %d, dial failed %d (statuses %v) in %v",
		r.served, r.refused, r.unanswered, r.dialFailed, r.statuses, r.took.Round(time.Millisecond))
}

// timedCall makes one request on a new connection from local and returns
// its status (0: none), how long it took and its error.
func timedCall(ctx context.Context, local, method, url, token, body string) (int, time.Duration, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
	}
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := client.Do(req)
	took := time.Since(start)
	if err != nil {
		return 0, took, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, took, nil
}

// floodAnswer bounds how long the admin API and another client may take
// to answer during a flood: seconds would mean queueing behind it, which
// is what the limits prevent; the rest is slack for -race on a loaded
// 2-core machine.
const floodAnswer = 2 * time.Second

// TestServeConnectionFlood opens 3000 idle keep-alive connections to the
// public listener from one address, with the child limited to 2048 open
// files. At most --max-connections-per-ip (256) may be served and held;
// the rest must be refused at once. Meanwhile the admin listener (its
// /healthz and a publish) and the public listener for another client
// (127.0.0.2) must answer promptly, and the child must stay below its
// file limit. Then eight more addresses flood the public listener past its
// total cap: connections idle longest make room, so another client is
// still served, and the admin listener keeps answering.
//
// Before the limits, the child accepted connections until it ran out of
// files (accept4: too many open files), and the admin listener, which
// needs a file per connection too, stopped answering.
func TestServeConnectionFlood(t *testing.T) {
	t.Parallel()
	const childFiles, perAddrFlood = 2048, 3000
	var own syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &own); err != nil || own.Cur < 8000 {
		t.Skipf("this test process may open %d files (%v); the floods need about 5000", own.Cur, err)
	}
	c := startFileLimitedChild(t, "flood", childFiles, "--delivery-workers", "64")
	pid := c.cmd.Process.Pid
	publicMax := 0 // the public listener's total cap, as the child logged it
	if l := c.logLine("connection limits"); l != nil {
		t.Logf("child's connection limits: %v", l)
		if l["open_file_limit"] != float64(childFiles) {
			t.Fatalf("the child sized its caps from an open-file limit of %v, not %d: the limit was set too late", l["open_file_limit"], childFiles)
		}
		publicMax = int(l["public_max"].(float64))
	}
	accountID, _ := c.createAccount(t, "flood")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// check asks the admin API and, from 127.0.0.2, the public listener to
	// answer during a flood, and reports the slowest answer.
	check := func(phase string) time.Duration {
		t.Helper()
		var slowest time.Duration
		answered := func(what string, want, status int, err error, took time.Duration) {
			t.Helper()
			slowest = max(slowest, took)
			if status != want || took > floodAnswer {
				t.Errorf("%s: %s answered %d (%v) after %v, want %d within %v", phase, what, status, err, took.Round(time.Millisecond), want, floodAnswer)
			}
		}
		for i := range 5 {
			status, took, err := timedCall(ctx, "127.0.0.1", "GET", "http://"+c.adminAddr+"/healthz", "", "")
			answered("admin /healthz", http.StatusOK, status, err, took)
			status, took, err = timedCall(ctx, "127.0.0.1", "POST", "http://"+c.adminAddr+"/admin/v1/events", relAdminToken,
				fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":"%s_%d","task_type":"image","data":{}}`, accountID, phase, i))
			answered("admin publish", http.StatusAccepted, status, err, took)
			status, took, err = timedCall(ctx, "127.0.0.2", "GET", "http://"+c.addr+"/healthz", "", "")
			answered("public /healthz from another address", http.StatusOK, status, err, took)
		}
		return slowest
	}

	// One address, over its cap and over the process's file limit.
	one := flood(t, c.addr, "127.0.0.1", perAddrFlood)
	files := openFiles(pid)
	t.Logf("flood from 127.0.0.1: %s; the child holds %d files of %d", one, files, childFiles)
	slowest := check("one_address")
	t.Logf("during the flood from one address: slowest admin or other-client answer %v", slowest.Round(time.Millisecond))
	if one.served > defaultMaxConnectionsPerIP {
		t.Errorf("%d connections from one address served and held, over the per-address cap of %d", one.served, defaultMaxConnectionsPerIP)
	}
	if one.unanswered > 0 || one.refused < perAddrFlood-defaultMaxConnectionsPerIP {
		t.Errorf("connections over the cap must be refused at once: %s", one)
	}
	// A client that sent its request before the refusal arrived may see
	// the connection reset instead of the 429: the listener closes at
	// once rather than hold a file to read the request.
	if status, _, err := timedCall(ctx, "127.0.0.1", "GET", "http://"+c.addr+"/healthz", "", ""); status != http.StatusTooManyRequests && (status != 0 || err == nil) {
		t.Errorf("a new connection from the flooding address: %d %v, want 429 or the connection closed", status, err)
	}
	if files >= childFiles-64 {
		t.Errorf("the child holds %d files, close to its limit of %d", files, childFiles)
	}

	// Eight more addresses, each under the per-address cap, together well
	// over the public listener's total.
	var many []*floodResult
	for i := 3; i <= 10; i++ {
		many = append(many, flood(t, c.addr, fmt.Sprintf("127.0.0.%d", i), 200))
	}
	files = openFiles(pid)
	var served, refused, unanswered int
	for _, r := range many {
		served, refused, unanswered = served+r.served, refused+r.refused, unanswered+r.unanswered
	}
	t.Logf("flood from 8 more addresses: 1600 connections, served %d, refused %d, unanswered %d; the child holds %d files of %d",
		served, refused, unanswered, files, childFiles)
	slowest = check("many_addresses")
	t.Logf("during the flood from many addresses: slowest admin or other-client answer %v", slowest.Round(time.Millisecond))
	if unanswered > 0 {
		t.Errorf("%d connections got no answer within %v", unanswered, floodAnswerBound)
	}
	open, closed := stillOpen(append(slices.Clone(one.conns), slices.Concat(connsOf(many)...)...))
	t.Logf("of the %d flood connections served, %d are still open and %d were closed by the server to make room", open+closed, open, closed)
	if publicMax > 0 && open > publicMax {
		t.Errorf("%d flood connections are open, over the public listener's cap of %d", open, publicMax)
	}
	if files >= childFiles-64 {
		t.Errorf("the child holds %d files, close to its limit of %d", files, childFiles)
	}
	if l := c.logLine("connections refused or closed at the connection limits"); l == nil {
		t.Errorf("the child did not log the refusals")
	} else {
		t.Logf("child's log: %v", l)
	}
	if races := c.logCount("WARNING: DATA RACE"); races > 0 {
		t.Errorf("%s reported %d data races (see its log)", c.name, races)
	}
}

// connsOf lists the held connections of each flood.
func connsOf(floods []*floodResult) [][]net.Conn {
	var out [][]net.Conn
	for _, f := range floods {
		out = append(out, f.conns)
	}
	return out
}

// stillOpen counts the connections the server has not closed: a read
// finds nothing within a millisecond rather than the end of the stream.
func stillOpen(conns []net.Conn) (open, closed int) {
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			open++
		} else {
			closed++
		}
		_ = c.SetReadDeadline(time.Time{})
	}
	return open, closed
}
