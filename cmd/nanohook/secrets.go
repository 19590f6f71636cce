package main

import (
	"context"
	"fmt"
	"io"

	"github.com/nanohook/nanohook/store"
)

// runSecrets handles "secrets reseal" and "secrets check", the tools of
// encryption at rest: reseal encrypts plaintext endpoint URLs and secrets
// and moves those sealed under an older key (or in the first format, not
// bound to their endpoint) to the primary one (the second step of a key
// rotation); check says whether serve would start with these keys.
func runSecrets(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: nanohook secrets reseal|check [--db PATH] (keys in NANOHOOK_ENCRYPTION_KEY)\n"
	if len(args) > 0 && isHelpFlag(args[0]) {
		return &helpRequest{usage: usage}
	}
	if len(args) == 0 || (args[0] != "reseal" && args[0] != "check") {
		fmt.Fprint(stderr, usage)
		return errUsageShown
	}
	sub := args[0]
	fs := newFlagSet("secrets "+sub, stderr)
	addConfigFlag(fs, serveFlagNames()...) // serve's file holds --db and the keys
	db := fs.String("db", defaultDB, "SQLite file, or a postgres:// URL")
	keys := addEncryptionKeyFlag(fs)
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	k, err := store.ParseKeyring(*keys)
	if err != nil {
		return err
	}
	if k == nil && sub == "reseal" {
		return fmt.Errorf("%s is not set: there is no key to encrypt with", store.KeySetting)
	}
	s, err := openKeyedStore(ctx, *db, k)
	if err != nil {
		return err
	}
	defer s.Close()
	if sub == "check" {
		if err := s.CheckSecrets(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "every stored endpoint URL and webhook secret opens with the configured keys")
		return nil
	}
	// Safe while serve runs: each row is swapped only if unchanged.
	n, err := s.ResealSecrets(ctx)
	fmt.Fprintf(stdout, "resealed %d endpoint(s) under key %s\n", n, k.PrimaryKeyID())
	if err != nil {
		return fmt.Errorf("secrets reseal: %w", err)
	}
	return nil
}
