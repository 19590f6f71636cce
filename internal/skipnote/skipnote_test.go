package skipnote

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	if got := Line("pkg"); got != "" {
		t.Fatalf("Line before any skip = %q, want none", got)
	}
	for range 2 { // a reason is named once, however many tests skip for it
		t.Run("postgres", func(t *testing.T) { skipWithoutPostgresUnset(t) })
	}
	t.Run("browser", func(t *testing.T) { Skip(t, "the browser test", "install Chromium") })
	want := "pkg: skipped the PostgreSQL tests (" + PostgresHowTo + "); skipped the browser test (install Chromium)"
	if got := Line("pkg"); got != want {
		t.Errorf("Line = %q\nwant   %q", got, want)
	}
}

// skipWithoutPostgresUnset is SkipWithoutPostgres with PostgresEnv unset.
func skipWithoutPostgresUnset(t *testing.T) {
	t.Setenv(PostgresEnv, "")
	SkipWithoutPostgres(t, "the PostgreSQL tests")
	t.Error("SkipWithoutPostgres did not skip")
}

// TestGoTestShowsTheLine runs a plain `go test` of a package whose tests
// skip without PostgreSQL, as a developer without a database does, and
// checks that its output names what was skipped and how to run it,
// although the go command drops a passing package's own output.
func TestGoTestShowsTheLine(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH: %v", err)
	}
	cmd := exec.Command(goTool, "test", "-count=1", "-run", "^TestConformance$", "./store/postgres")
	cmd.Dir = "../.."
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, PostgresEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test ./store/postgres: %v\n%s", err, out)
	}
	want := "github.com/nanohook/nanohook/store/postgres: skipped the PostgreSQL driver's tests (" + PostgresHowTo + ")\n"
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "ok  \tgithub.com/nanohook/nanohook/store/postgres") {
		t.Errorf("go test ./store/postgres printed:\n%s\nwant the line %q beside its ok", out, want)
	}
}
