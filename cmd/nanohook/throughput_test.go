package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchServer starts a real nanohook with its listeners on loopback and one
// account whose endpoints point at a loopback receiver that counts
// deliveries.
func benchServer(b *testing.B, endpoints int, onDelivery func()) (srv *server, accountID any) {
	b.Helper()
	cfg := serveConfig{
		DB: filepath.Join(b.TempDir(), "bench.db"), Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		AdminToken: testAdminToken, AllowHTTP: true, AllowPrivateTargets: true,
		RetrySchedule: []time.Duration{time.Second}, DeliveryTimeout: 5 * time.Second,
		DeliveryWorkers: 256, ShutdownTimeout: 5 * time.Second,
	}
	srv, err := startServer(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.shutdown(context.Background()) })
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		onDelivery()
	}))
	b.Cleanup(rcv.Close)
	status, env := benchCall(b, srv.adminURL()+"/admin/v1/accounts", testAdminToken, `{"name":"bench"}`)
	if status != 201 {
		b.Fatalf("account: %d %v", status, env)
	}
	acct := env["data"].(map[string]any)
	for i := range endpoints {
		status, env := benchCall(b, srv.publicURL()+"/api/v1/webhooks", acct["api_key"].(string),
			fmt.Sprintf(`{"url":"%s/e%d","events":["job.completed"]}`, rcv.URL, i))
		if status != 201 {
			b.Fatalf("endpoint: %d %v", status, env)
		}
	}
	return srv, acct["id"]
}

func benchCall(b *testing.B, url, token, body string) (int, map[string]any) {
	b.Helper()
	return apiCall(b, "POST", url, token, body)
}

// BenchmarkPublishToReceipt measures, on an otherwise idle server, the time
// from sending one publish to the receiver having the delivery: the wake-up
// path, not a poll interval.
func BenchmarkPublishToReceipt(b *testing.B) {
	got := make(chan struct{}, 1)
	srv, acct := benchServer(b, 1, func() { got <- struct{}{} })
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		status, _ := benchCall(b, srv.adminURL()+"/admin/v1/events", testAdminToken, fmt.Sprintf(
			`{"account_id":%v,"event":"job.completed","task_id":"t%d","task_type":"image","data":{"url":"https://cdn.example.com/%d.png","credits_charged":6}}`, acct, i, i))
		if status != 202 {
			b.Fatalf("publish: %d", status)
		}
		<-got
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkBatchThroughput publishes events in batches of 500 to 10
// endpoints and reports deliveries a second end to end (publish committed,
// claimed, signed, posted, recorded).
func BenchmarkBatchThroughput(b *testing.B) {
	const endpoints, batch = 10, 500
	var delivered atomic.Int64
	srv, acct := benchServer(b, endpoints, func() { delivered.Add(1) })
	items := make([]string, batch)
	cpu0 := cpuTime()
	start := time.Now()
	n := 0
	for b.Loop() {
		for j := range items {
			items[j] = fmt.Sprintf(`{"account_id":%v,"event":"job.completed","task_id":"t%d_%d","task_type":"image","data":{"url":"https://cdn.example.com/x.png","credits_charged":6}}`, acct, n, j)
		}
		n++
		status, _ := benchCall(b, srv.adminURL()+"/admin/v1/events/batch", testAdminToken, `{"events":[`+strings.Join(items, ",")+`]}`)
		if status != 202 {
			b.Fatalf("batch: %d", status)
		}
	}
	want := int64(n * batch * endpoints)
	for delivered.Load() < want {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(want), "cpu-us/delivery")
	b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(n*batch)/elapsed.Seconds(), "events/s")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
