package api

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	// The code oapi-codegen generates imports its runtime. Importing it here
	// keeps it (and so its go.sum lines) in go.mod, where `go mod download`
	// fetches it, so that the generated package compiles offline.
	_ "github.com/oapi-codegen/runtime"
)

// codegenConfig is oapi-codegen's configuration with nothing but the
// defaults a user gets from `oapi-codegen -generate types,client`: no
// skip-prune, no name overrides, no compatibility switches.
const codegenConfig = `package: generated
generate:
  models: true
  client: true
output: %s
`

// TestOpenAPIGeneratesAGoClient: oapi-codegen, the usual Go generator (its
// version is the tool directive's in go.mod), generates types and a client
// from openapi.json with its default options, and the result compiles and
// passes go vet. Customers generate clients from the served document; a
// response named like a schema (duplicate typename 'Webhook') or a
// component only the webhooks section refers to (which the generator
// prunes, leaving an undefined type) broke theirs.
func TestOpenAPIGeneratesAGoClient(t *testing.T) {
	t.Parallel()
	tool, err := exec.Command("go", "tool", "-n", "oapi-codegen").Output()
	if err != nil {
		msg := "cannot build oapi-codegen (go.mod's tool directive; run `go mod download` with the module proxy reachable): " + exitText(err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	// The generated package lives inside the module (testdata is left out
	// of ./... patterns), so that it compiles against go.mod's oapi-codegen
	// runtime without a module of its own or the network.
	dir, err := os.MkdirTemp("testdata", "oapi-codegen-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(abs, "config.yaml")
	out := filepath.Join(abs, "client.gen.go")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, codegenConfig, out), 0o600); err != nil {
		t.Fatal(err)
	}

	gen := exec.Command(strings.TrimSpace(string(tool)), "-config", cfg, "openapi.json")
	if b, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen cannot generate from openapi.json: %v\n%s", err, b)
	}
	if err := os.Remove(cfg); err != nil { // not Go, but keep the package clean
		t.Fatal(err)
	}
	vet := exec.Command("go", "vet", "./"+filepath.ToSlash(dir))
	if b, err := vet.CombinedOutput(); err != nil {
		t.Fatalf("the client oapi-codegen generates from openapi.json does not compile: %v\n%s", err, b)
	}
}

// exitText is a failed command's error with what it wrote to stderr.
func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return err.Error() + ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return err.Error()
}
