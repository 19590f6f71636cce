package delivery_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/sqlite"
	"github.com/nanohook/nanohook/webhook"
)

// Sizes of the hostile answers of issue 13: a status line and a Location
// far beyond anything nanohook keeps, and beyond the transport's header cap
// (egress.MaxResponseHeaderBytes), and a smaller pair within the cap, which
// Go's transport passes on whole and nanohook must cut.
const (
	hostileStatusLen   = 250 << 10
	hostileLocationLen = 200 << 10
	withinCapLen       = 24 << 10
)

// randomText returns n bytes of random letters and digits: text that no
// storage engine compresses away (PostgreSQL's TOAST would shrink a run of
// one byte to almost nothing and hide what a row really costs).
func randomText(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// longStatusLine answers every request with a malformed status line of n
// bytes, which Go's transport quotes whole in its error when it is within
// the header cap.
func longStatusLine(n int) func(net.Conn) {
	return func(c net.Conn) {
		if readRequest(c) {
			io.WriteString(c, "HTTP/1.1 "+randomText(n)+" OK\r\nContent-Length: 0\r\n\r\n")
		}
		c.Close()
	}
}

// longLocation answers every request 302 with a Location of n bytes.
func longLocation(n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Location", "https://elsewhere.example.com/"+randomText(n))
		w.WriteHeader(http.StatusFound)
	})
}

// sizedStore is a store under test and a way to tell how many bytes it
// holds.
type sizedStore struct {
	store.Store
	bytes func(t *testing.T) int64
}

// TestHostileTextGrowsStoreLittle is the storage half of issue 13's first
// attack: 40 attempts to receivers that answer a 250 KiB malformed status
// line or a 302 with a 200 KiB Location once grew the store by about 1 MiB
// each (the text in the attempt's error, again in the delivery's
// last_error, and the Location). Now the transport refuses such headers,
// and what it passes on (24 KiB of either here) is cut to its documented
// size: the 40 attempts must grow the store by under 4 MiB in all, on both
// drivers, and every kept text must be within its bound and, cut, say how
// long the original was.
func TestHostileTextGrowsStoreLittle(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "test.db")
		st, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		checkHostileTextGrowth(t, sizedStore{Store: st, bytes: sqliteBytes(path)})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		checkHostileTextGrowth(t, openSizedPostgres(t))
	})
}

func checkHostileTextGrowth(t *testing.T, st sizedStore) {
	const perReceiver = 10 // endpoints per receiver, one attempt each: 40 attempts
	ctx := context.Background()
	_, hash := nanohook.NewAPIKey()
	acct, _, err := st.CreateAccount(ctx, store.CreateAccountParams{Name: "a", KeyHash: hash, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	receivers := []struct {
		url    string
		errHas string // in the attempt's error
		cut    bool   // the error (and the Location of a 302) was cut
	}{
		{"http://" + rawServer(t, longStatusLine(hostileStatusLen)), "server response headers exceeded", false},
		{httpServer(t, longLocation(hostileLocationLen)), "server response headers exceeded", false},
		{"http://" + rawServer(t, longStatusLine(withinCapLen)), "malformed HTTP status code", true},
		{httpServer(t, longLocation(withinCapLen)), "HTTP 302: redirects are not followed", true},
	}
	byEndpoint := map[int64]int{}
	for i, r := range receivers {
		for range perReceiver {
			ep, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: acct.ID, URL: r.url, Secret: testSecret,
				Events: []nanohook.EventType{nanohook.EventJobCompleted}, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			byEndpoint[ep.ID] = i
		}
	}
	body, err := webhook.EncodePayload(webhook.Payload{Event: "job.completed", TaskID: "hostile-text", TaskType: "image",
		Status: "completed", Data: []byte(`{}`), Timestamp: "2024-12-23T10:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PublishEvents(ctx, []store.PublishEventParams{{ID: nanohook.NewEventID(), AccountID: acct.ID,
		Type: nanohook.EventJobCompleted, TaskID: "hostile-text", TaskType: "image", Payload: body,
		OccurredAt: time.Now(), Now: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	before := st.bytes(t)

	want := len(receivers) * perReceiver
	var done atomic.Int64
	allDone := make(chan struct{})
	e := startEngine(t, delivery.Config{
		Store:    st,
		Client:   egress.NewClient(egress.Options{AllowPrivate: true, Timeout: 10 * time.Second}),
		Schedule: []time.Duration{time.Hour}, Timeout: 10 * time.Second, MaxInFlight: 8, PollInterval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnComplete: func(store.CompleteParams) {
			if done.Add(1) == int64(want) {
				close(allDone)
			}
		},
	})
	e.Wake()
	select {
	case <-allDone:
	case <-time.After(time.Minute):
		t.Fatalf("%d of %d attempts completed within a minute", done.Load(), want)
	}
	grew := st.bytes(t) - before
	t.Logf("%d attempts grew the store by %d bytes (%.1f KiB an attempt)", want, grew, float64(grew)/float64(want)/1024)
	if grew >= 4<<20 {
		t.Errorf("%d attempts grew the store by %d bytes, want under 4 MiB", want, grew)
	}

	for id := range int64(want) { // a fresh store: deliveries 1 to 40
		d, atts, err := st.GetDelivery(ctx, acct.ID, id+1)
		if err != nil {
			t.Fatal(err)
		}
		if len(atts) != 1 {
			t.Fatalf("delivery %d has %d attempts, want 1", d.ID, len(atts))
		}
		a, r := atts[0], receivers[byEndpoint[d.EndpointID]]
		if !strings.Contains(a.Error, r.errHas) || d.LastError != a.Error {
			t.Errorf("delivery %d: error %.80q…, last_error %.80q…, want %q in both", d.ID, a.Error, d.LastError, r.errHas)
		}
		if len(a.Error) > nanohook.MaxStoredError || len(d.LastError) > nanohook.MaxStoredError || len(a.Location) > nanohook.MaxStoredLocation {
			t.Errorf("delivery %d: error %d bytes, last_error %d, location %d: over their bounds", d.ID, len(a.Error), len(d.LastError), len(a.Location))
		}
		if !r.cut {
			continue
		}
		checkCut(t, fmt.Sprintf("delivery %d: error", d.ID), a.Error, nanohook.MaxStoredError)
		if a.ResponseStatus == http.StatusFound {
			checkCut(t, fmt.Sprintf("delivery %d: location", d.ID), a.Location, nanohook.MaxStoredLocation)
			if !strings.HasPrefix(a.Location, "https://elsewhere.example.com/") {
				t.Errorf("delivery %d: location %.40q…, want the start of the Location sent", d.ID, a.Location)
			}
		}
	}
}

// checkCut fails unless s is clean text of at most max bytes that ends,
// being cut, in the length of the original.
func checkCut(t *testing.T, what, s string, limit int) {
	t.Helper()
	if len(s) > limit || !utf8.ValidString(s) {
		t.Errorf("%s: %d bytes (valid UTF-8: %v), want at most %d", what, len(s), utf8.ValidString(s), limit)
	}
	i := strings.LastIndex(s, "…[")
	if i < 0 || !strings.HasSuffix(s, " bytes]") {
		t.Errorf("%s: %q…%q does not end in the original length", what, s[:min(len(s), 40)], s[max(0, len(s)-40):])
		return
	}
	n, err := strconv.Atoi(strings.TrimSuffix(s[i+len("…["):], " bytes]"))
	if err != nil || n <= limit {
		t.Errorf("%s: original length %q, want a number over %d", what, s[i:], limit)
	}
}

// sqliteBytes measures a SQLite database as page_count × page_size, read
// on a connection of its own: the pages of every committed transaction,
// whether still in the write-ahead log or checkpointed.
func sqliteBytes(path string) func(t *testing.T) int64 {
	return func(t *testing.T) int64 {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var pages, size int64
		if err := db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("PRAGMA page_size").Scan(&size); err != nil {
			t.Fatal(err)
		}
		return pages * size
	}
}

// openSizedPostgres opens a fresh PostgreSQL store (openPostgres) whose
// size is every table of its schema with its indexes and TOAST.
func openSizedPostgres(t *testing.T) sizedStore {
	t.Helper()
	st, base, schema := openPostgres(t)
	return sizedStore{Store: st, bytes: func(t *testing.T) int64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int64
		if err := conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind = 'r'`, schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}}
}
