package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestBenchFlags(t *testing.T) {
	env := map[string]string{"NANOHOOK_BENCH_ENDPOINTS": "7", "NANOHOOK_ENDPOINTS": "99", "NANOHOOK_DB": "prod.db"}
	cfg, err := parseBench([]string{"--scenarios", "backlog,fast,fast"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SinglePublishers != 50 || cfg.SteadySingle {
		t.Errorf("single publishers %d, steady single %v: want 50 and batches by default", cfg.SinglePublishers, cfg.SteadySingle)
	}
	if cfg, err := parseBench([]string{"--steady-single", "--single-publishers", "20"}, func(string) string { return "" }, &bytes.Buffer{}); err != nil ||
		!cfg.SteadySingle || cfg.SinglePublishers != 20 || !slices.Contains(cfg.Scenarios, "singles") {
		t.Errorf("--steady-single --single-publishers 20: %+v (%v); want both set, singles among the defaults", cfg, err)
	}
	if cfg.Endpoints != 7 || cfg.DB != "" || !slices.Equal(cfg.Scenarios, []string{"fast", "backlog"}) {
		t.Errorf("endpoints %d, db %q, scenarios %v: want 7 from NANOHOOK_BENCH_ENDPOINTS, no db, [fast backlog]", cfg.Endpoints, cfg.DB, cfg.Scenarios)
	}
	// inflight runs only when named; isolation by default.
	if cfg, err := parseBench(nil, func(string) string { return "" }, &bytes.Buffer{}); err != nil ||
		slices.Contains(cfg.Scenarios, "inflight") || !slices.Contains(cfg.Scenarios, "isolation") {
		t.Errorf("default scenarios %v (%v): want isolation, not inflight", cfg.Scenarios, err)
	}
	if cfg, err := parseBench([]string{"--scenarios", "inflight,isolation"}, func(string) string { return "" }, &bytes.Buffer{}); err != nil ||
		!slices.Equal(cfg.Scenarios, []string{"isolation", "inflight"}) {
		t.Errorf("--scenarios inflight,isolation: %v (%v), want [isolation inflight]", cfg.Scenarios, err)
	}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--scenarios", "fast,quick"}, nil, `--scenarios: unknown scenario "quick"`},
		{[]string{"--db", "bench.db"}, nil, "--db must be a postgres:// URL"},
		{[]string{"--batch", "1001"}, nil, "--batch must be at most 1000"},
		{[]string{"--single-publishers", "0"}, nil, "--single-publishers must be positive"},
		{nil, map[string]string{"NANOHOOK_BENCH_WORKERS": "many"}, `NANOHOOK_BENCH_WORKERS="many"`},
	} {
		_, err := parseBench(c.args, func(k string) string { return c.env[k] }, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v, want one containing %q", c.args, c.env, err, c.want)
		}
	}
}
