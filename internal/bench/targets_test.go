package bench

import "testing"

// TestBenchTargetsPerDatabase: the fast goal is judged on both databases
// (0.45 of the ceiling on SQLite, 0.25 on PostgreSQL); the steady, noisy
// and backlog goals, which issue 5 sets for SQLite, are judged there and
// only shown on PostgreSQL.
func TestBenchTargetsPerDatabase(t *testing.T) {
	scenarios := func() []*benchScenario {
		return []*benchScenario{
			{Name: "fast", Runs: []benchRun{{Label: "fast", RatioToCeiling: 0.3}}},
			{Name: "steady", Runs: []benchRun{{Label: "steady 1000/s", P99MS: 30}}},
		}
	}
	for _, c := range []struct {
		db          string
		fastPass    bool
		steadyJudge bool
	}{
		{db: "", fastPass: false, steadyJudge: true},
		{db: "postgres://postgres@127.0.0.1:5432/test", fastPass: true, steadyJudge: false},
	} {
		b := &bench{cfg: Config{DB: c.db}}
		sc := scenarios()
		fast, steady := b.targets(sc[0]), b.targets(sc[1])
		if len(fast) != 1 || fast[0].Pass == nil || *fast[0].Pass != c.fastPass {
			t.Errorf("db %q: fast ratio 0.3 judged %+v, want pass=%v", c.db, fast, c.fastPass)
		}
		if len(steady) != 1 || (steady[0].Pass != nil) != c.steadyJudge {
			t.Errorf("db %q: steady target %+v, want judged=%v", c.db, steady, c.steadyJudge)
		}
		if !c.steadyJudge && steady[0].Value != 30 {
			t.Errorf("db %q: steady p99 not shown for comparison: %+v", c.db, steady)
		}
		if c.steadyJudge && *steady[0].Pass {
			t.Errorf("a p99 of 30 ms passed the 25 ms goal on SQLite")
		}
	}
}

// TestBenchSinglesTargets: singles is judged on both databases by its
// share of the ceiling (0.25 on SQLite, 0.12 on PostgreSQL); its p99 and
// CPU per event are SQLite's goals, shown on PostgreSQL.
func TestBenchSinglesTargets(t *testing.T) {
	run := benchRun{Label: "singles", RatioToCeiling: 0.2, P99MS: 40, CPUSecondsPer1k: 0.5}
	for _, c := range []struct {
		db        string
		ratioPass bool
		judged    int
	}{
		{db: "", ratioPass: false, judged: 3},
		{db: "postgres://postgres@127.0.0.1:5432/test", ratioPass: true, judged: 1},
	} {
		b := &bench{cfg: Config{DB: c.db}}
		tg := b.targets(&benchScenario{Name: "singles", Runs: []benchRun{run}})
		if len(tg) != 3 || tg[0].Pass == nil || *tg[0].Pass != c.ratioPass || tg[0].Value != 0.2 {
			t.Fatalf("db %q: targets %+v, want the ratio 0.2 judged pass=%v first", c.db, tg, c.ratioPass)
		}
		judged := 0
		for _, x := range tg {
			if x.Pass != nil {
				judged++
			}
		}
		if judged != c.judged {
			t.Errorf("db %q: %d targets judged, want %d: %+v", c.db, judged, c.judged, tg)
		}
		if c.db == "" && (*tg[1].Pass != true || *tg[2].Pass != false) {
			t.Errorf("SQLite: p99 40 ms and 0.5 ms CPU judged %+v, want pass and fail", tg)
		}
	}
}

// TestBenchIsolationTarget: the isolation goal is judged on both databases
// by the ratio of the healthy p99s, and a healthy delivery still late when
// the wait ran out fails it whatever the ratio of those that arrived.
func TestBenchIsolationTarget(t *testing.T) {
	for _, c := range []struct {
		name      string
		db        string
		withBad   benchRun
		wantPass  bool
		wantValue float64
	}{
		{"within", "", benchRun{P99MS: 14, P99RatioToAlone: 1.4}, true, 1.4},
		{"beyond", "", benchRun{P99MS: 20, P99RatioToAlone: 2}, false, 2},
		{"postgres", "postgres://postgres@127.0.0.1:5432/test", benchRun{P99MS: 12, P99RatioToAlone: 1.2}, true, 1.2},
		{"late", "", benchRun{P99MS: 11, Late: 3, Expected: 160}, false, 0},
	} {
		b := &bench{cfg: Config{DB: c.db}, sizes: quickSizes}
		c.withBad.Label = "isolation +bad"
		sc := &benchScenario{Name: "isolation", Runs: []benchRun{{Label: "isolation alone", P99MS: 10}, c.withBad}}
		ts := b.targets(sc)
		if len(ts) != 1 || ts[0].Pass == nil || *ts[0].Pass != c.wantPass || ts[0].Value != c.wantValue {
			t.Errorf("%s: targets %+v, want pass=%v with value %v", c.name, ts, c.wantPass, c.wantValue)
		}
	}
}
