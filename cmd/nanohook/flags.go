package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// newFlagSet makes a flag set for one command that reports its own errors
// to stderr. Its usage lists every flag with its environment twin;
// commands with more to say set their own Usage, writing to fs.Output().
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("nanohook "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\nEach flag may also come from its environment variable (the command line wins).\n\nFlags:\n", fs.Name())
		printSettings(fs.Output(), flagSettings(fs, envName))
	}
	return fs
}

// envName is the environment twin of a flag: --delivery-timeout is
// NANOHOOK_DELIVERY_TIMEOUT.
func envName(flagName string) string {
	return "NANOHOOK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// helpRequest is what parseFlags returns when the command line asks for
// help (-h, -help or --help). Help that was asked for is no mistake: run
// prints usage on stdout and exits 0, as for "nanohook --help".
type helpRequest struct{ usage string }

func (h *helpRequest) Error() string { return "help requested" }

// isHelpFlag reports whether arg asks for help the way the flag package
// understands it, for commands that look at an argument before their flags.
func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "--h" || arg == "-help" || arg == "--help"
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment twin or, failing that, from the configuration
// file of a command that has --config (addConfigFlag). Command-line values
// win over environment, environment over the file, the file over defaults.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	explainDurations(fs)
	// What the flag package prints goes to stdout for -h and to stderr for
	// a mistake, which is known only once Parse returns.
	out := fs.Output()
	var held bytes.Buffer
	fs.SetOutput(&held)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		return &helpRequest{usage: held.String()}
	}
	out.Write(held.Bytes())
	if err != nil {
		return errUsageShown // the flag package printed the problem
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	file, path, err := readConfig(fs, set, getenv)
	if err != nil {
		return err
	}
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, e)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("config file %s: %s = %q: %w", path, f.Name, v, e)
			}
		}
	})
	return err
}

// durationFlag is a duration flag whose refusal says what a duration looks
// like: the flag package's own says only "parse error", which leaves an
// operator who wrote 15 guessing.
type durationFlag struct{ flag.Value }

func (d durationFlag) Set(s string) error {
	if err := d.Value.Set(s); err != nil {
		return fmt.Errorf(`want a duration such as "15s" (a number and a unit: ms, s, m or h)`)
	}
	return nil
}

func (d durationFlag) Get() any { return d.Value.(flag.Getter).Get() }

// explainDurations gives fs's duration flags durationFlag's refusal.
func explainDurations(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if _, done := f.Value.(durationFlag); done {
			return
		}
		if _, ok := durationOf(f); ok {
			f.Value = durationFlag{f.Value}
		}
	})
}

// durationOf is the value of a duration flag.
func durationOf(f *flag.Flag) (time.Duration, bool) {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return 0, false
	}
	d, ok := g.Get().(time.Duration)
	return d, ok
}

// setting is one way to configure a command: a flag and its environment
// twin, or (flag empty) a variable read from the environment only.
type setting struct {
	flag  string // name without dashes
	kind  string // what the flag takes ("duration", "int"; empty for a boolean)
	env   string
	def   string // the default as an operator writes it; empty: none
	usage string
}

// flagSettings lists fs's flags as settings, env naming each one's
// environment twin.
func flagSettings(fs *flag.FlagSet, env func(flagName string) string) []setting {
	var rows []setting
	fs.VisitAll(func(f *flag.Flag) {
		plain := *f
		if d, ok := f.Value.(durationFlag); ok {
			plain.Value = d.Value // for UnquoteUsage's "duration"
		}
		kind, usage := flag.UnquoteUsage(&plain)
		rows = append(rows, setting{flag: f.Name, kind: kind, env: env(f.Name), def: defaultText(f), usage: usage})
	})
	return rows
}

// defaultText shows a flag's default as an operator would write it:
// durations without trailing zero units (720h, not 720h0m0s).
func defaultText(f *flag.Flag) string {
	v := f.DefValue
	if _, ok := durationOf(f); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return v
		}
		v = d.String()
		if strings.HasSuffix(v, "m0s") {
			v = strings.TrimSuffix(v, "0s")
		}
		if strings.HasSuffix(v, "h0m") {
			v = strings.TrimSuffix(v, "0m")
		}
	}
	return v
}

// printSettings writes settings as a command's help lists them: the same
// rows as README.md's configuration table, for a terminal.
func printSettings(w io.Writer, rows []setting) {
	for _, s := range rows {
		var head string
		if s.flag == "" {
			head = fmt.Sprintf("  %s (environment only)", s.env)
		} else {
			head = "  --" + s.flag
			if s.kind != "" {
				head += " " + s.kind
			}
			head += "   env " + s.env
			if s.def != "" {
				head += ", default " + s.def
			}
		}
		fmt.Fprintf(w, "%s\n        %s\n", head, s.usage)
	}
}
