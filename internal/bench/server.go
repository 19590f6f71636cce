package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/client"
	"github.com/nanohook/nanohook/internal/dburl"
)

// benchRetrySchedule replaces the production schedule of hours, so that
// retried deliveries arrive within the scenario.
const benchRetrySchedule = "500ms,1s,2s,5s"

// serveProc is one "nanohook serve" child process and its database.
type serveProc struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process exited
	waitErr error         // its exit status, once done is closed
	logPath string        // its stdout and stderr
	api     *serverAPI
	dropDB  func() error // removes the run's database
}

// pid is the child's process id, for /proc and for people attaching a
// profiler.
func (p *serveProc) pid() int { return p.cmd.Process.Pid }

// startServe creates a fresh database, starts serve on it with loopback
// listeners on free ports and waits until both answer /healthz.
func (b *bench) startServe(ctx context.Context, label string, extraArgs []string) (*serveProc, error) {
	db, drop, err := b.freshDB(ctx, label)
	if err != nil {
		return nil, err
	}
	p, err := b.launch(label, db, extraArgs)
	if err != nil {
		drop()
		return nil, err
	}
	p.dropDB = drop
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.waitReady(rctx); err != nil {
		p.stop()
		return nil, err
	}
	b.say("%s: server pid %d ready", label, p.pid())
	return p, nil
}

// launch starts the child without waiting for it.
func (b *bench) launch(label, db string, extraArgs []string) (*serveProc, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	token := nanohook.NewSecret()
	args := append(slices.Clone(b.cfg.Serve.Args), "serve", "--db", db,
		"--addr", ports[0], "--admin-addr", ports[1],
		"--allow-http", "--allow-private-targets",
		"--retry-schedule", benchRetrySchedule,
		"--delivery-timeout", b.timeout.String(),
		"--delivery-workers", strconv.Itoa(b.cfg.Workers),
		"--shutdown-timeout", "5s",
		"--log-level", "warn",
		// fan-out puts every endpoint on one account, as many as --endpoints.
		"--max-endpoints-per-account", "0")
	// Scenario flags first, the user's last: the flag package keeps the last
	// value, so --serve-arg can override anything.
	args = append(append(args, extraArgs...), b.cfg.ServeArgs...)
	logPath := filepath.Join(b.dir, fileName(label)+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.cfg.Serve.Path, args...)
	cmd.Env = append(serveEnv(b.cfg.Serve.Env), "NANOHOOK_ADMIN_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting serve: %w", err)
	}
	p := &serveProc{cmd: cmd, done: make(chan struct{}), logPath: logPath,
		api: newServerAPI("http://"+ports[0], "http://"+ports[1], token)}
	go func() {
		p.waitErr = cmd.Wait() // published by close(done)
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// serveEnv is this process's environment without NANOHOOK_* settings, so
// that only the flags the bench passes configure the server, plus extra
// (Command.Env).
func serveEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NANOHOOK_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// freePorts returns n loopback addresses nothing listens on right now; all
// n listeners stay open until every port is chosen so none repeats.
func freePorts(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// waitReady polls /healthz on both listeners until they answer 200.
func (p *serveProc) waitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return fmt.Errorf("serve exited before it was ready (%v):\n%s", p.waitErr, p.logTail(20))
		default:
		}
		if p.api.healthy(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("serve not ready: %w\n%s", ctx.Err(), p.logTail(20))
		case <-tick.C:
		}
	}
}

// stop ends the server with SIGTERM (SIGKILL if it outlives its shutdown
// timeout by far), then removes its database. The error reports an unclean
// exit; the run's figures stand regardless.
func (p *serveProc) stop() error {
	// A pooled connection that never carried a request holds up
	// http.Server.Shutdown for up to 5 s; close them first so the server's
	// shutdown measures the server.
	p.api.http.CloseIdleConnections()
	var errs []error
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, fmt.Errorf("SIGTERM: %w", err))
	}
	select {
	case <-p.done:
		if p.waitErr != nil {
			errs = append(errs, fmt.Errorf("serve exited with %v: %s", p.waitErr, strings.ReplaceAll(p.logTail(3), "\n", " | ")))
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		errs = append(errs, errors.New("serve did not exit within 30s of SIGTERM; killed"))
	}
	if p.dropDB != nil {
		if err := p.dropDB(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// logTail returns the last lines the server logged.
func (p *serveProc) logTail(lines int) string {
	data, _ := os.ReadFile(p.logPath)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// fileName turns a run label ("steady 1000/s") into a file name.
func fileName(label string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(label))
}

// freshDB makes an empty database for one run and a function that removes
// it: a SQLite file in the bench's directory, or a new PostgreSQL schema
// that the URL selects through search_path.
func (b *bench) freshDB(ctx context.Context, label string) (db string, drop func() error, err error) {
	if b.cfg.DB == "" {
		path := filepath.Join(b.dir, fileName(label)+".db")
		return path, func() error {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			return nil
		}, nil
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	schema := "nanohook_bench_" + hex.EncodeToString(r[:])
	if err := pgExec(ctx, b.cfg.DB, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(b.cfg.DB)
	if err != nil {
		return "", nil, fmt.Errorf("--db: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return pgExec(ctx, b.cfg.DB, "DROP SCHEMA "+schema+" CASCADE")
	}, nil
}

// pgExec runs one statement on a connection of its own.
func pgExec(ctx context.Context, dbURL, sql string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("--db %s: %w", dburl.Redact(dbURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("--db %s: %s: %w", dburl.Redact(dbURL), sql, err)
	}
	return nil
}

// serverAPI calls one server's public and admin APIs.
type serverAPI struct {
	http   *http.Client // pooled, shared by the clients below
	public string       // the public listener's base URL
	admin  *client.Client
	// probe calls /healthz on the public listener, unauthenticated.
	probe *client.Client
}

func newServerAPI(public, admin, token string) *serverAPI {
	// Publishers keep their connections: a new one per batch would measure
	// connection setup, not publishing.
	t := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}
	hc := &http.Client{Transport: t, Timeout: time.Minute}
	return &serverAPI{http: hc, public: public,
		admin: client.New(admin, token, client.WithHTTPClient(hc)),
		probe: client.New(public, "", client.WithHTTPClient(hc))}
}

// healthy tells whether both listeners answer /healthz, each within a
// second.
func (a *serverAPI) healthy(ctx context.Context) bool {
	for _, c := range []*client.Client{a.probe, a.admin} {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Healthy(ctx)
		cancel()
		if err != nil {
			return false
		}
	}
	return true
}

// createAccount makes an account and returns its id and a client of the
// public API with its API key.
func (a *serverAPI) createAccount(ctx context.Context, name string) (int64, *client.Client, error) {
	acct, err := a.admin.CreateAccount(ctx, name)
	if err != nil {
		return 0, nil, err
	}
	return acct.ID, client.New(a.public, acct.APIKey, client.WithHTTPClient(a.http)), nil
}
