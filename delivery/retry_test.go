package delivery

import (
	"testing"
	"time"
)

func TestRetryPolicyNext(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{Schedule: DefaultSchedule()}
	cases := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		rnd        float64
		want       time.Duration
		ok         bool
	}{
		{"first failure, no jitter", 1, 0, 0.5, 5 * time.Second, true},
		{"first failure, lowest jitter", 1, 0, 0, 4500 * time.Millisecond, true},
		{"first failure, highest jitter", 1, 0, 1, 5500 * time.Millisecond, true},
		{"second failure", 2, 0, 0.5, 5 * time.Minute, true},
		{"seventh failure is the last wait", 7, 0, 0.5, 10 * time.Hour, true},
		{"eighth failure ends it", 8, 0, 0.5, 0, false},
		{"Retry-After longer than the step is honoured", 1, time.Minute, 0.5, time.Minute, true},
		{"Retry-After is capped at the next step", 1, time.Hour, 0.5, 5 * time.Minute, true},
		{"Retry-After shorter than the step does not shorten it", 2, time.Second, 0.5, 5 * time.Minute, true},
		{"Retry-After on the last step is capped at that step", 7, 48 * time.Hour, 0.5, 10 * time.Hour, true},
		{"attempt 0 is not a failure", 0, 0, 0.5, 0, false},
		// With high jitter the step (10h54m) exceeds the capped Retry-After
		// (10h): the step stands, the header never shortens the wait.
		{"capped Retry-After below the jittered step keeps the step", 6, 11 * time.Hour, 0.95, 10*time.Hour + 54*time.Minute, true},
		{"Retry-After between jittered step and ceiling wins", 1, 6 * time.Second, 1, 6 * time.Second, true},
	}
	for _, c := range cases {
		got, ok := p.Next(c.attempt, c.retryAfter, c.rnd)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: Next(%d, %s, %v) = %s, %v; want %s, %v", c.name, c.attempt, c.retryAfter, c.rnd, got, ok, c.want, c.ok)
		}
	}
}

func TestRetryPolicyEmptyScheduleNeverRetries(t *testing.T) {
	t.Parallel()
	if _, ok := (RetryPolicy{}).Next(1, 0, 0.5); ok {
		t.Fatal("an empty schedule retried")
	}
}

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	got, err := ParseSchedule("5s, 5m,30m,2h,5h,10h,10h")
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultSchedule()
	if len(got) != len(def) {
		t.Fatalf("got %v", got)
	}
	for i := range got {
		if got[i] != def[i] {
			t.Fatalf("step %d = %s, want %s", i, got[i], def[i])
		}
	}
	for _, bad := range []string{"5s,,5m", "5x", "-1s", "0s"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", bad)
		}
	}
	if s, err := ParseSchedule(""); err != nil || s != nil {
		t.Errorf("empty schedule = %v, %v", s, err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"Fri, 02 Jan 2026 03:05:05 GMT": time.Minute,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0, // in the past
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}
