package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// helpCommands are every command and subcommand that takes flags.
var helpCommands = [][]string{
	{"serve"}, {"migrate"}, {"accounts"}, {"accounts", "create"}, {"secrets"},
	{"secrets", "reseal"}, {"secrets", "check"}, {"demo"}, {"listen"},
	{"trigger"}, {"trigger", "job.completed"}, {"bench"},
}

// TestHelpSucceeds: help that was asked for is no mistake. Every command
// answers -h, -help and --help with its usage on stdout, nothing on stderr
// and success (exit 0), as "nanohook --help" does.
func TestHelpSucceeds(t *testing.T) {
	t.Parallel()
	for _, cmd := range helpCommands {
		for _, h := range []string{"-h", "-help", "--help"} {
			args := append(append([]string{}, cmd...), h)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, envOf(nil), &stdout, &stderr)
			if err != nil {
				t.Errorf("nanohook %s: %v, want success", strings.Join(args, " "), err)
			}
			if !strings.Contains(strings.ToLower(stdout.String()), "usage") || stderr.Len() > 0 {
				t.Errorf("nanohook %s: stdout %q, stderr %q: want the usage on stdout only", strings.Join(args, " "), stdout.String(), stderr.String())
			}
		}
	}
	// A real mistake still fails, with the problem on stderr.
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "--no-such-flag"}, envOf(nil), &bytes.Buffer{}, &stderr)
	if !errors.Is(err, errUsageShown) || !strings.Contains(stderr.String(), "no-such-flag") {
		t.Errorf("serve --no-such-flag: %v, stderr %q", err, stderr.String())
	}
}

// TestHelpExitStatus runs the binary: "serve -h" exits 0.
func TestHelpExitStatus(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"-h", "--help"} {
		cmd := exec.Command(os.Args[0], "serve", h)
		cmd.Env = childEnv()
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("nanohook serve %s: %v", h, err)
		}
		if !strings.Contains(string(out), adminTokenEnv) {
			t.Errorf("nanohook serve %s printed %q", h, out)
		}
	}
}

// TestServeHelpListsSettings: serve -h shows what README.md's table
// shows: every flag with its environment variable, and the admin token.
func TestServeHelpListsSettings(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"serve", "-h"}, envOf(nil), &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	help := stdout.String()
	fs, _ := serveFlags(&serveConfig{}, nil)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(help, "--"+f.Name+" ") || !strings.Contains(help, envName(f.Name)) {
			t.Errorf("serve -h does not show --%s with %s", f.Name, envName(f.Name))
		}
	})
	for _, want := range []string{adminTokenEnv, adminTokenUsage, "default 15s"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve -h lacks %q:\n%s", want, help)
		}
	}
}

// TestDurationFlagsSayWhatTheyWant: a duration without its unit, from the
// command line or the environment, is refused with an example of one.
func TestDurationFlagsSayWhatTheyWant(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	if _, err := parseServe([]string{"--delivery-timeout", "15"}, envOf(nil), &stderr); err == nil ||
		!strings.Contains(stderr.String(), `want a duration such as "15s"`) {
		t.Errorf("--delivery-timeout 15: %v, stderr %q", err, stderr.String())
	}
	_, err := parseServe(nil, envOf(map[string]string{"NANOHOOK_RETENTION": "30"}), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `NANOHOOK_RETENTION="30": want a duration such as "15s"`) {
		t.Errorf("NANOHOOK_RETENTION=30: %v", err)
	}
}
