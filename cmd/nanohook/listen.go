package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/nanohook/nanohook/webhook"
)

// runListen is a local receiver for people building endpoints: it verifies
// each delivery with the given secret and pretty-prints it.
func runListen(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("listen", stderr)
	secret := fs.String("secret", "", "the endpoint's signing secret (required)")
	port := fs.Int("port", 9000, "port to listen on (127.0.0.1)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *secret == "" {
		return fmt.Errorf("--secret is required")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("--port %d: %w", *port, err)
	}
	v := &webhook.Verifier{Secrets: []string{*secret}}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		verdict, status := "✔ signature verified", http.StatusOK
		if err := v.Verify(r.Header, body); err != nil {
			verdict, status = "✘ "+err.Error(), http.StatusUnauthorized
		}
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "  ", "  ") != nil {
			pretty.Reset()
			pretty.Write(body)
		}
		fmt.Fprintf(stdout, "%s %s %s  event=%s id=%s attempt=%s\n  %s\n  %s\n\n",
			time.Now().Format(time.TimeOnly), r.Method, r.URL.Path,
			r.Header.Get(webhook.HeaderEvent), r.Header.Get(webhook.HeaderEventID),
			r.Header.Get(webhook.HeaderDeliveryAttempt), verdict, pretty.String())
		w.WriteHeader(status)
	})}
	fmt.Fprintf(stdout, "listening on http://%s — point a webhook at it (serve with --allow-http --allow-private-targets)\n", ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
