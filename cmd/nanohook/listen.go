package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nanohook/nanohook/webhook"
)

// Bounds of listen's forwarding. The sender gives up on its own after its
// delivery timeout (15 s by default) and cancels the forward with it;
// listenForwardTimeout only bounds a forward whose sender waits longer (curl).
// Only the start of the app's answer is relayed: nanohook keeps 4 KiB of it.
const (
	listenMaxBody          = 1 << 20
	listenForwardTimeout   = 60 * time.Second
	listenMaxForwardAnswer = 64 << 10
)

// runListen is a local receiver for people building endpoints: it verifies
// each delivery with the given secret and pretty-prints it, and with
// --forward-to hands verified deliveries to the app being built.
func runListen(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("listen", stderr)
	secret := fs.String("secret", "", "the endpoint's signing secret (required)")
	port := fs.Int("port", 9000, "port to listen on (127.0.0.1); 0 picks a free one")
	forwardTo := fs.String("forward-to", "", "forward each verified delivery to this URL (your local app) and answer with its status")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *secret == "" {
		return fmt.Errorf("--secret is required")
	}
	l := &listenHandler{
		verifier: &webhook.Verifier{Secrets: []string{*secret}},
		out:      &listenOutput{w: stdout},
	}
	if *forwardTo != "" {
		target, err := parseTargetURL("forward-to", *forwardTo)
		if err != nil {
			return err
		}
		l.target = target
		l.client = &http.Client{
			Timeout: listenForwardTimeout,
			// nanohook never follows redirects, so neither does the stand-in:
			// the app's 3xx reaches the sender as a 3xx.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("--port %d: %w", *port, err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: l}
	l.out.printf("listening on http://%s — point a webhook at it (serve with --allow-http --allow-private-targets)\n", ln.Addr())
	if l.target != nil {
		l.out.printf("forwarding verified deliveries to %s\n", l.target)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-stopped
	if l.client != nil {
		l.client.CloseIdleConnections()
	}
	return nil
}

// parseTargetURL reads the value of a URL flag (--forward-to, --to): an
// absolute http or https URL, the only kind a delivery can be sent to.
func parseTargetURL(flagName, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--%s %q: must be an absolute http:// or https:// URL, such as http://localhost:3000/webhooks", flagName, raw)
	}
	return u, nil
}

// withoutURL drops the "Post \"http://…\":" prefix of a client error, for
// messages that name the URL already.
func withoutURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// listenHandler verifies, prints and (with a target) forwards deliveries.
type listenHandler struct {
	verifier *webhook.Verifier
	out      *listenOutput
	target   *url.URL     // nil: answer 200 to verified deliveries
	client   *http.Client // forwards to target
}

func (l *listenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, listenMaxBody))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := l.verifier.Verify(r.Header, body); err != nil {
		note := ""
		if l.target != nil {
			note = "not forwarded"
		}
		l.print(r, body, "✘ "+err.Error(), note)
		http.Error(w, "signature verification failed: "+err.Error(), http.StatusUnauthorized)
		return
	}
	if l.target == nil {
		l.print(r, body, "✔ signature verified", "")
		w.WriteHeader(http.StatusOK)
		return
	}
	start := time.Now()
	resp, answer, err := l.forward(r, body)
	if err != nil {
		msg := fmt.Sprintf("nanohook listen: could not forward to %s: %v", l.target, err)
		l.print(r, body, "✔ signature verified", "→ "+msg+", answering 502")
		http.Error(w, msg, http.StatusBadGateway)
		return
	}
	l.print(r, body, "✔ signature verified", fmt.Sprintf("→ %s answered %s in %s", l.target, resp.Status, time.Since(start).Round(time.Millisecond)))
	relayAppAnswer(w, resp, answer)
}

// relayAppAnswer answers the sender with the app's status and body, and
// the headers nanohook acts on: the Location of a 3xx is kept in the
// attempt, the Retry-After of a 429 or 503 schedules the next one.
func relayAppAnswer(w http.ResponseWriter, resp *http.Response, body []byte) {
	for _, name := range []string{"Content-Type", "Location", "Retry-After"} {
		if v := resp.Header.Get(name); v != "" {
			w.Header().Set(name, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

// forward sends a verified delivery to the target as nanohook sent it: same
// method, body bytes, Content-Type and X-Nano-* headers, so the app can
// verify the signature itself. It returns the app's answer, body capped.
func (l *listenHandler) forward(r *http.Request, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, l.target.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for name, values := range r.Header {
		if name == "Content-Type" || strings.HasPrefix(name, "X-Nano-") {
			req.Header[name] = values
		}
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, nil, withoutURL(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, listenMaxForwardAnswer))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp, answer, nil
}

// print shows one delivery: a summary line, the verdict, what forwarding
// did (when anything), and the body, indented when it is JSON.
func (l *listenHandler) print(r *http.Request, body []byte, verdict, forwarded string) {
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "  ", "  ") != nil {
		pretty.Reset()
		pretty.Write(body)
	}
	if forwarded != "" {
		forwarded = "  " + forwarded + "\n"
	}
	l.out.printf("%s %s %s  event=%s id=%s attempt=%s\n  %s\n%s  %s\n\n",
		time.Now().Format(time.TimeOnly), r.Method, r.URL.Path,
		r.Header.Get(webhook.HeaderEvent), r.Header.Get(webhook.HeaderEventID),
		r.Header.Get(webhook.HeaderDeliveryAttempt), verdict, forwarded, pretty.String())
}

// listenOutput serialises what concurrent deliveries print, so each one's
// lines stay together.
type listenOutput struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *listenOutput) printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format, args...)
}
