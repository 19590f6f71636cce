//go:build linux

// The writer-stall attack of issue 13 (item 2), run against a real
// "nanohook serve" on SQLite: one account's hostile receiver, behind 256
// endpoints, answers every delivery of one ordinary event with a 250 KiB
// malformed status line or a 302 with a 200 KiB Location. Before receiver
// text was cut, the process stored about 1 MiB per attempt through the one
// SQLite writer and another account's publishes took up to 9.8 s.

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostileReceiver answers every request, in turn, with a malformed status
// line of 250 KiB or a 302 whose Location is 200 KiB (the attack of issue
// 13, now refused at the transport's header cap), and the same two at
// 24 KiB, within the cap (Go quotes such a status line whole in its error;
// nanohook cuts both). All are random text that nothing compresses.
type hostileReceiver struct {
	ln       net.Listener
	answers  [4]string
	requests atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func startHostileReceiver(t *testing.T) *hostileReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	statusLine := func(n int) string {
		return "HTTP/1.1 " + randomLetters(n) + " OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	}
	redirect := func(n int) string {
		return "HTTP/1.1 302 Found\r\nLocation: https://elsewhere.example.com/" + randomLetters(n) +
			"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	}
	h := &hostileReceiver{ln: ln, conns: map[net.Conn]struct{}{}, answers: [4]string{
		statusLine(250 << 10), redirect(200 << 10), statusLine(24 << 10), redirect(24 << 10),
	}}
	h.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns[c] = struct{}{}
			h.mu.Unlock()
			h.wg.Go(func() { h.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		for c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return h
}

func (h *hostileReceiver) serve(c net.Conn) {
	defer func() {
		c.Close()
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
	}()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	io.Copy(io.Discard, req.Body)
	n := h.requests.Add(1)
	io.WriteString(c, h.answers[n%int64(len(h.answers))])
}

func (h *hostileReceiver) url() string { return "http://" + h.ln.Addr().String() + "/hook" }

// randomLetters returns n random letters and digits.
func randomLetters(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// TestHostileReceiverDoesNotStallOtherAccounts runs the attack while a
// bystander account publishes 50 events a second, and requires every
// bystander publish to succeed with a p99 latency under a second (under
// -race, whose children run several times slower and make 256 attempts at
// once a CPU storm of their own, 10 a second and no latency bound: that
// would measure the machine); the store to grow by under
// 16 MiB for the 256 attempts (about 1 MiB each before); the attacker's
// listing and delivery detail to stay small; and no log line of the
// process, at debug level where every attempt is logged, to exceed 4 KiB
// (1.28 MB before).
func TestHostileReceiverDoesNotStallOtherAccounts(t *testing.T) {
	t.Parallel()
	const endpoints = 256
	bound, every := time.Second, 20*time.Millisecond
	if raceBuild() {
		bound, every = 0, 100*time.Millisecond
	}
	hostile := startHostileReceiver(t)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(good.Close)

	// 256 endpoints on one account: more than the default per-account cap
	// that issue 13 also asks for, which the environment lifts (a variable
	// no flag reads is ignored).
	c := startSQLiteChildEnv(t, "node", []string{"NANOHOOK_MAX_ENDPOINTS_PER_ACCOUNT=0"}, "--log-level", "debug")
	attacker, attackerKey := c.createAccount(t, "attacker")
	bystander, bystanderKey := c.createAccount(t, "bystander")
	var attackerEndpoints []int64
	for range endpoints {
		attackerEndpoints = append(attackerEndpoints, c.createEndpoint(t, attackerKey, hostile.url(), "whsec_attacker-secret", "job.completed"))
	}
	c.createEndpoint(t, bystanderKey, good.URL+"/hook", "whsec_bystander-secret", "job.completed")

	db := openReadOnly(t, c.db)
	defer db.Close()
	storeBytes := func() (pages int64, files int64) {
		var count, size int64
		if err := db.QueryRow("PRAGMA page_count").Scan(&count); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("PRAGMA page_size").Scan(&size); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{c.db, c.db + "-wal"} {
			if fi, err := os.Stat(p); err == nil {
				files += fi.Size()
			}
		}
		return count * size, files
	}
	attempts := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
			WHERE d.account_id = ?`, attacker).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pub := &http.Client{Timeout: time.Minute}
	publish := func(account int64, task string) (int, time.Duration) {
		body := fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":%q,"task_type":"image","data":{"url":"https://cdn.example.com/x.png"}}`, account, task)
		req, err := http.NewRequestWithContext(ctx, "POST", "http://"+c.adminAddr+"/admin/v1/events", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+relAdminToken)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := pub.Do(req)
		took := time.Since(start)
		if err != nil {
			return 0, took
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, took
	}
	// The bystander warms up before the attack, so that the first
	// connection's cost is not counted.
	for i := range 5 {
		if status, _ := publish(bystander, fmt.Sprintf("warm_%d", i)); status != http.StatusAccepted {
			t.Fatalf("bystander publish before the attack: %d", status)
		}
	}
	pagesBefore, filesBefore := storeBytes()

	// The bystander publishes at a steady rate, each publish on its
	// own goroutine whatever the others wait for, until the attack's first
	// round of attempts is stored and two seconds more. (Publishers that
	// wait for their previous answer would send nothing while the writer
	// stalls, and the stall would hide in a handful of samples.)
	type try struct {
		status int
		took   time.Duration
	}
	var (
		mu   sync.Mutex
		load []try
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			wg.Go(func() {
				status, took := publish(bystander, fmt.Sprintf("by_%d", n))
				mu.Lock()
				load = append(load, try{status, took})
				mu.Unlock()
			})
		}
	})
	attackAt := time.Now()
	if status, took := publish(attacker, "attack"); status != http.StatusAccepted {
		t.Fatalf("attacker publish: %d after %v", status, took)
	}
	for attempts() < endpoints {
		if c.exited() {
			t.Fatalf("the node exited: %v", c.waitErr)
		}
		select {
		case <-ctx.Done():
			stopLoad()
			wg.Wait()
			t.Fatalf("%d of %d attempts stored before the deadline (%d requests received)", attempts(), endpoints, hostile.requests.Load())
		case <-time.After(50 * time.Millisecond):
		}
	}
	stored := time.Since(attackAt)
	time.Sleep(2 * time.Second)
	stopLoad() // publishes in flight finish: ctx, not loadCtx, bounds them
	wg.Wait()

	var lat []time.Duration
	failed := 0
	for _, p := range load {
		lat = append(lat, p.took)
		if p.status != http.StatusAccepted {
			failed++
		}
	}
	slices.Sort(lat)
	if len(lat) < 20 {
		t.Fatalf("only %d bystander publishes were made during the attack", len(lat))
	}
	p50, p99, worst := lat[len(lat)/2], lat[(len(lat)*99-1)/100], lat[len(lat)-1]
	pagesAfter, filesAfter := storeBytes()
	t.Logf("attack: %d attempts stored %v after the publish; bystander: %d publishes, %d failed, p50 %v, p99 %v, slowest %v; store grew %d bytes (pages), %d bytes (file + WAL); node's peak RSS %s",
		endpoints, stored.Round(time.Millisecond), len(lat), failed, p50.Round(time.Millisecond), p99.Round(time.Millisecond),
		worst.Round(time.Millisecond), pagesAfter-pagesBefore, filesAfter-filesBefore, peakRSS(c.cmd.Process.Pid))
	if failed > 0 {
		t.Errorf("%d of %d bystander publishes failed during the attack", failed, len(lat))
	}
	if bound > 0 && p99 >= bound {
		t.Errorf("bystander publish p99 %v during the attack, want under %v", p99, bound)
	}
	if grew := pagesAfter - pagesBefore; grew >= 16<<20 {
		t.Errorf("%d attempts grew the store by %d bytes, want under 16 MiB", endpoints, grew)
	}

	// What the attacker reads back stays small.
	for _, a := range []struct {
		path  string
		limit int
	}{
		{fmt.Sprintf("/api/v1/webhooks/%d/deliveries?limit=100", attackerEndpoints[0]), 256 << 10},
		{fmt.Sprintf("/api/v1/deliveries/%d", firstDeliveryOf(t, c, attackerKey, attackerEndpoints[0])), 64 << 10},
	} {
		size := answerSize(t, "http://"+c.addr+a.path, attackerKey)
		t.Logf("GET %s: %d bytes", a.path, size)
		if size >= a.limit {
			t.Errorf("GET %s answered %d bytes, want under %d", a.path, size, a.limit)
		}
	}

	// At debug level every attempt is logged; no line may carry the
	// receiver's text beyond its bound.
	longest := 0
	for _, path := range c.logs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			longest = max(longest, len(line))
		}
	}
	t.Logf("longest log line: %d bytes", longest)
	if longest > 4<<10 {
		t.Errorf("the longest log line has %d bytes, want at most 4 KiB", longest)
	}
	c.stopGracefully(t, 15*time.Second)
}

// firstDeliveryOf returns the id of the newest delivery of an endpoint.
func firstDeliveryOf(t *testing.T, c *sqliteChild, key string, endpoint int64) int64 {
	t.Helper()
	status, env := apiCall(t, "GET", fmt.Sprintf("http://%s/api/v1/webhooks/%d/deliveries?limit=1", c.addr, endpoint), key, "")
	data, _ := env["data"].([]any)
	if status != http.StatusOK || len(data) != 1 {
		t.Fatalf("deliveries of endpoint %d: %d %v", endpoint, status, env)
	}
	return int64(data[0].(map[string]any)["id"].(float64))
}

// answerSize returns the size of a 200 answer to GET url.
func answerSize(t *testing.T, url, key string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return len(body)
}

// peakRSS reads a process's peak resident set size (VmHWM) from /proc, for
// the report.
func peakRSS(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
