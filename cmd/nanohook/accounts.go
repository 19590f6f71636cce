package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// runAccounts handles "accounts create".
func runAccounts(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: nanohook accounts create --name N [--json] [--db PATH]\n"
	if len(args) > 0 && isHelpFlag(args[0]) {
		return &helpRequest{usage: usage}
	}
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprint(stderr, usage)
		return errUsageShown
	}
	fs := newFlagSet("accounts create", stderr)
	db := fs.String("db", defaultDB, "SQLite file path or postgres:// URL")
	name := fs.String("name", "", "the account's name (required)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	// The API's rule: a name with surrounding spaces is refused, not
	// trimmed, so that both make the same accounts.
	n := *name
	if err := nanohook.ValidateAccountName("--name", n); err != nil {
		return err
	}
	s, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	key, hash := nanohook.NewAPIKey()
	acct, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: n, KeyHash: hash, Now: time.Now()})
	if err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(struct {
			ID     int64  `json:"id"`
			Name   string `json:"name"`
			APIKey string `json:"api_key"`
		}{acct.ID, acct.Name, key})
	}
	fmt.Fprintf(stdout, "account %d (%s) created\nAPI key (shown once, keep it safe): %s\n", acct.ID, acct.Name, key)
	return nil
}
