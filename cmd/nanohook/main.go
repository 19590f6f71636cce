// Command nanohook is the webhook service and its tools: serve, migrate,
// accounts, secrets, demo, listen, trigger and bench. main only wires the
// process to run, which takes everything from its arguments so tests can
// call it in-process.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is reported in the User-Agent of every delivery.
var version = "0.1.0"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsageShown) {
			fmt.Fprintln(os.Stderr, "nanohook:", err)
		}
		os.Exit(1)
	}
}

// errUsageShown reports a command-line mistake whose explanation was already
// printed.
var errUsageShown = errors.New("usage")

const usage = `nanohook — signed webhook delivery for job events

Usage:
  nanohook serve     [flags]   run the public API, admin API and delivery workers
  nanohook migrate   [flags]   apply schema migrations and exit
  nanohook accounts create --name N [--json]   create an account, print its API key
  nanohook secrets reseal|check   encrypt stored webhook secrets under the first NANOHOOK_ENCRYPTION_KEY key, or check they open
  nanohook demo                a self-contained tour in a temporary database
  nanohook listen --secret S [--port P] [--forward-to URL]
                               a local receiver that verifies deliveries (and forwards them to your app)
  nanohook trigger job.completed|job.failed --to URL --secret S [--data JSON] [--task-id ID]
                               send one signed sample delivery, as nanohook would
  nanohook bench [--quick] [--json] [--db postgres://…]   measure throughput and latency on this machine
  nanohook version

Every flag has an environment twin: --delivery-timeout is NANOHOOK_DELIVERY_TIMEOUT.
Run 'nanohook <command> -h' for a command's flags.
`

// run executes one nanohook command. A command asked for help (-h, -help,
// --help) prints its usage on stdout and succeeds.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := runCommand(ctx, args, getenv, stdout, stderr)
	if h, ok := errors.AsType[*helpRequest](err); ok {
		fmt.Fprint(stdout, h.usage)
		return nil
	}
	return err
}

// runCommand dispatches to the command args name.
func runCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsageShown
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "accounts":
		return runAccounts(ctx, rest, getenv, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, getenv, stdout, stderr)
	case "listen":
		return runListen(ctx, rest, getenv, stdout, stderr)
	case "trigger":
		return runTrigger(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, getenv, stdout, stderr)
	case "secrets":
		return runSecrets(ctx, rest, getenv, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "nanohook", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "nanohook: unknown command %q\n\n%s", cmd, usage)
	return errUsageShown
}
