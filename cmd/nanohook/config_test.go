package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite README.md's configuration reference from serve's flags")

// writeConfig writes a TOML file into the test's directory.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nanohook.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigFilePrecedence(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
# keys are flag names
delivery-timeout = "7s"
allow-http = true
retry-schedule = "1s,2s"
addr = ":1111"
admin-addr = "127.0.0.1:2222"
delivery-workers = 9
`)
	env := map[string]string{"NANOHOOK_ADDR": ":3333", "NANOHOOK_DELIVERY_WORKERS": "10"}
	check := func(t *testing.T, c serveConfig) {
		t.Helper()
		if c.DeliveryTimeout != 7*time.Second || !c.AllowHTTP || !slices.Equal(c.RetrySchedule, []time.Duration{time.Second, 2 * time.Second}) {
			t.Errorf("values from the file: timeout %v, allow-http %v, schedule %v", c.DeliveryTimeout, c.AllowHTTP, c.RetrySchedule)
		}
		if c.AdminAddr != "127.0.0.1:2222" {
			t.Errorf("admin-addr = %q, want the file's", c.AdminAddr)
		}
		if c.Addr != ":3333" {
			t.Errorf("addr = %q: the environment must win over the file", c.Addr)
		}
		if c.DeliveryWorkers != 11 {
			t.Errorf("delivery-workers = %d: the command line must win over environment and file", c.DeliveryWorkers)
		}
		if c.LogFormat != "text" || c.Retention != 30*24*time.Hour {
			t.Errorf("defaults: log-format %q, retention %v", c.LogFormat, c.Retention)
		}
	}

	t.Run("FlagNamesTheFile", func(t *testing.T) {
		t.Parallel()
		c, err := parseServe([]string{"--config", path, "--delivery-workers", "11"}, envOf(env), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		check(t, c)
	})
	t.Run("EnvironmentNamesTheFile", func(t *testing.T) {
		t.Parallel()
		e := map[string]string{"NANOHOOK_CONFIG": path}
		for k, v := range env {
			e[k] = v
		}
		c, err := parseServe([]string{"--delivery-workers", "11"}, envOf(e), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		check(t, c)
	})
	t.Run("FlagWinsOverEnvironment", func(t *testing.T) {
		t.Parallel()
		e := map[string]string{"NANOHOOK_CONFIG": filepath.Join(t.TempDir(), "missing.toml")}
		for k, v := range env {
			e[k] = v
		}
		c, err := parseServe([]string{"--config", path, "--delivery-workers", "11"}, envOf(e), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		check(t, c)
	})
	t.Run("NoFile", func(t *testing.T) {
		t.Parallel()
		c, err := parseServe(nil, envOf(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.DeliveryTimeout != 15*time.Second || c.AllowHTTP || c.Addr != ":8080" {
			t.Errorf("defaults without a file: %+v", c)
		}
	})
}

func TestConfigFileErrorsNameFileAndKey(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body string
		want       []string // each must appear in the error
	}{
		{"unknown key", "delivery-timout = \"5s\"\nzeta = 1\n", []string{`unknown key "delivery-timout", "zeta"`, "nanohook serve -h"}},
		{"config names another", `config = "other.toml"`, []string{`unknown key "config"`}},
		{"bad duration", `delivery-timeout = "soon"`, []string{`delivery-timeout = "soon"`}},
		// TOML has no durations: a bare number is the likely mistake.
		{"duration without unit", `delivery-timeout = 15`, []string{`delivery-timeout = 15`, `want a duration such as "15s"`}},
		{"duration string without unit", `retention = "30"`, []string{`retention = "30"`, `want a duration such as "15s"`}},
		{"bad boolean", `allow-http = "yes"`, []string{`allow-http = "yes"`}},
		{"bad integer", `delivery-workers = 2.5`, []string{`delivery-workers = "2.5"`}},
		{"list", `retry-schedule = ["5s", "5m"]`, []string{"retry-schedule: must be one value, not a list"}},
		{"table", "[retention]\ndays = 30\n", []string{"retention: must be a value, not a table"}},
		{"bad schedule", `retry-schedule = "5s,soon"`, []string{"--retry-schedule"}},
		{"syntax", `delivery-timeout = `, []string{"line 1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, c.body)
			_, err := parseServe([]string{"--config", path}, envOf(nil), io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			want := c.want
			if c.name != "bad schedule" { // checked after parsing, by flag
				want = append(want, "config file "+path)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "absent.toml")
		_, err := parseServe(nil, envOf(map[string]string{"NANOHOOK_CONFIG": path}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "config file "+path) {
			t.Fatalf("error = %v", err)
		}
	})
}

// TestMigrateReadsServeConfig: one file configures serve and migrate;
// migrate takes db from it and skips serve's other keys, but still refuses
// keys of neither.
func TestMigrateReadsServeConfig(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "from-config.db")
	path := writeConfig(t, fmt.Sprintf("db = %q\ndelivery-timeout = \"5s\"\naddr = \":9999\"\n", db))
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "--config", path}, envOf(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(db); err != nil || !strings.Contains(out.String(), "migrations applied") {
		t.Fatalf("migrate did not use the file's db: %v, output %q", err, out.String())
	}
	bad := writeConfig(t, "db = \"x.db\"\nbogus = true\n")
	err := run(context.Background(), []string{"migrate", "--config", bad}, envOf(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown key "bogus"`) {
		t.Fatalf("unknown key in migrate's file: %v", err)
	}
}

// The markers around the generated table in README.md.
const (
	referenceBegin = "<!-- config:begin -->\n"
	referenceEnd   = "<!-- config:end -->\n"
)

// configReference is the README's table of serve's settings, made from
// the flag set itself so that it cannot drift from the code; serve -h
// prints the same rows.
func configReference() string {
	var b strings.Builder
	b.WriteString("| flag | environment | default | what |\n| --- | --- | --- | --- |\n")
	for _, s := range serveSettings() {
		flagCell, def := "| |", "(none)" // an environment-only row has no flag
		if s.flag != "" {
			flagCell = "| `--" + s.flag + "` |"
		}
		if s.def != "" {
			def = "`" + s.def + "`"
		}
		fmt.Fprintf(&b, "%s `%s` | %s | %s |\n", flagCell, s.env, def, markdownCell(s.usage))
	}
	return b.String()
}

func markdownCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// TestConfigReference fails when README.md's configuration table differs
// from what serve's flags generate; -update rewrites it.
func TestConfigReference(t *testing.T) {
	const readme = "../../README.md"
	raw, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	begin := strings.Index(text, referenceBegin)
	end := strings.Index(text, referenceEnd)
	if begin < 0 || end < begin {
		t.Fatalf("README.md lacks the markers %q and %q around the configuration table", referenceBegin, referenceEnd)
	}
	begin += len(referenceBegin)
	want := configReference()
	if text[begin:end] == want {
		return
	}
	if *update {
		if err := os.WriteFile(readme, []byte(text[:begin]+want+text[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's configuration table is out of date; run go test ./cmd/nanohook -run TestConfigReference -update\n got:\n%s\nwant:\n%s", text[begin:end], want)
}

// TestLimitFlags: the tenant bounds have their documented defaults and
// refuse values outside their range.
func TestLimitFlags(t *testing.T) {
	t.Parallel()
	c, err := parseServe(nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxPayloadBytes != 64<<10 || c.MaxEndpoints != 100 {
		t.Errorf("defaults: max-payload-bytes %d, max-endpoints-per-account %d", c.MaxPayloadBytes, c.MaxEndpoints)
	}
	if c, err := parseServe([]string{"--max-endpoints-per-account", "0"}, envOf(nil), io.Discard); err != nil || c.MaxEndpoints != 0 {
		t.Errorf("--max-endpoints-per-account 0 (no limit): %d, %v", c.MaxEndpoints, err)
	}
	c, err = parseServe(nil, envOf(map[string]string{"NANOHOOK_MAX_PAYLOAD_BYTES": "1048576"}), io.Discard)
	if err != nil || c.MaxPayloadBytes != 1<<20 {
		t.Errorf("NANOHOOK_MAX_PAYLOAD_BYTES=1048576: %d, %v", c.MaxPayloadBytes, err)
	}
	for _, args := range [][]string{
		{"--max-payload-bytes", "1048577"},
		{"--max-payload-bytes", "1023"},
		{"--max-payload-bytes", "0"},
		{"--max-endpoints-per-account", "-1"},
	} {
		if _, err := parseServe(args, envOf(nil), io.Discard); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: error %v, want one naming the flag", args, err)
		}
	}
}
