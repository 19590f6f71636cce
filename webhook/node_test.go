package webhook

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/nanohook/nanohook/internal/skipnote"
)

// nodeRef is one long-lived `node testdata/canon.js` shared by every test of
// the binary: the reference implementation of JSON.stringify(JSON.parse(x)).
type nodeRef struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

var (
	nodeOnce   sync.Once
	nodeShared *nodeRef
	nodeErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	skipnote.Report("github.com/nanohook/nanohook/webhook")
	if nodeShared != nil {
		nodeShared.close()
	}
	// Only now that the shared node process is closed may no goroutine be
	// left: goleak.VerifyTestMain would check before the close.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left running after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// requireNode returns the shared node process, starting it on first use. The
// tests are about matching Node.js byte for byte, so a missing node is a
// failure, not a skip.
func requireNode(tb testing.TB) *nodeRef {
	tb.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		tb.Fatalf("these tests compare against Node.js, but `node` is not in PATH (%v); install Node.js to run them", err)
	}
	nodeOnce.Do(func() { nodeShared, nodeErr = startNode() })
	if nodeErr != nil {
		tb.Fatalf("start node: %v", nodeErr)
	}
	return nodeShared
}

func startNode() (*nodeRef, error) {
	cmd := exec.Command("node", "testdata/canon.js")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &nodeRef{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<16)}, nil
}

func (n *nodeRef) close() {
	n.in.Close()
	n.cmd.Wait()
}

// nodeResult is what node made of one input.
type nodeResult struct {
	out []byte // JSON.stringify(JSON.parse(input))
	err string // JSON.parse's message when it threw
}

// roundTrip asks node for JSON.stringify(JSON.parse(input)).
func (n *nodeRef) roundTrip(tb testing.TB, input []byte) nodeResult {
	tb.Helper()
	return n.roundTripMany(tb, [][]byte{input})[0]
}

// roundTripMany sends every input before reading the answers, so thousands of
// values cost one pipe round trip instead of thousands.
func (n *nodeRef) roundTripMany(tb testing.TB, inputs [][]byte) []nodeResult {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	werr := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(n.in, 1<<16)
		for _, in := range inputs {
			w.WriteString(base64.StdEncoding.EncodeToString(in))
			w.WriteByte('\n')
		}
		werr <- w.Flush()
	}()
	results := make([]nodeResult, len(inputs))
	for i := range inputs {
		line, err := n.out.ReadString('\n')
		if err != nil {
			tb.Fatalf("read from node: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if msg, ok := strings.CutPrefix(line, "ERR "); ok {
			results[i].err = msg
			continue
		}
		out, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			tb.Fatalf("node answered %q: %v", line, err)
		}
		results[i].out = out
	}
	if err := <-werr; err != nil {
		tb.Fatalf("write to node: %v", err)
	}
	return results
}

func (r nodeResult) String() string {
	if r.err != "" {
		return fmt.Sprintf("JSON.parse threw: %s", r.err)
	}
	return string(r.out)
}
