package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/webhook"
)

// ceilingWarmup is how long the ceiling posts before it starts counting:
// its first requests pay for opening --workers connections.
const ceilingWarmup = 500 * time.Millisecond

// ceiling posts signed bodies with the delivery client straight to a
// loopback receiver from --workers goroutines: what nanohook could reach if
// storing, claiming and recording cost nothing.
func (b *bench) ceiling(ctx context.Context) (benchCeiling, error) {
	bodies, err := ceilingBodies(1000)
	if err != nil {
		return benchCeiling{}, err
	}
	l := &ceilingLoad{b: b, secrets: benchSecrets(b.cfg.Endpoints), bodies: bodies,
		client: egress.NewClient(egress.Options{AllowPrivate: true, Timeout: b.timeout, UserAgent: "nanohook/" + b.cfg.Version})}
	defer l.client.CloseIdleConnections()
	if l.rcv, err = startReceiver(l.secrets, func(int) behaviour { return answerAtOnce }, nil, 0); err != nil {
		return benchCeiling{}, err
	}
	defer l.rcv.close()

	stop := b.progress("ceiling", "posted", 0, l.rcv.delivered.Load)
	var wg sync.WaitGroup
	end := time.Now().Add(ceilingWarmup + b.sizes.ceiling)
	for range b.cfg.Workers {
		wg.Go(func() { l.postUntil(ctx, end) })
	}
	sleepCtx(ctx, ceilingWarmup)
	start, before := time.Now(), l.rcv.delivered.Load()
	wg.Wait()
	elapsed := time.Since(start)
	stop()

	c := benchCeiling{Requests: l.rcv.delivered.Load() - before, Seconds: elapsed.Seconds(), Failed: l.failed.Load(), InvalidSignatures: l.rcv.invalid.Load()}
	c.RequestsPerSec = float64(c.Requests) / c.Seconds
	b.say("ceiling: %s requests/s", thousands(int64(c.RequestsPerSec)))
	if _, bad := l.rcv.snapshot(); bad != nil {
		return c, fmt.Errorf("%d signatures did not verify, first: %w", c.InvalidSignatures, bad)
	}
	if ctx.Err() != nil {
		return c, ctx.Err()
	}
	if l.firstErr != nil {
		return c, fmt.Errorf("%d requests failed, first: %w", c.Failed, l.firstErr)
	}
	return c, nil
}

// ceilingLoad is the state the ceiling's senders share.
type ceilingLoad struct {
	b       *bench
	client  *http.Client
	rcv     *benchReceiver
	secrets []string
	bodies  [][]byte

	next     atomic.Int64 // request number, for the slot, body and event id
	failed   atomic.Int64
	errOnce  sync.Once
	firstErr error // set once, read after every sender returned
}

// postUntil is one sender: request after request until end.
func (l *ceilingLoad) postUntil(ctx context.Context, end time.Time) {
	for time.Now().Before(end) && ctx.Err() == nil {
		i := int(l.next.Add(1) - 1)
		slot := i % len(l.secrets)
		err := l.b.postSigned(ctx, l.client, l.rcv.url(slot), l.secrets[slot], l.bodies[i%len(l.bodies)], "evt_ceiling_"+strconv.Itoa(i))
		if err != nil && ctx.Err() == nil {
			l.failed.Add(1)
			l.errOnce.Do(func() { l.firstErr = err })
		}
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// ceilingBodies are n canonical payloads such as the server makes for the
// events the scenarios publish.
func ceilingBodies(n int) ([][]byte, error) {
	ts := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	bodies := make([][]byte, n)
	for i := range bodies {
		var err error
		bodies[i], err = webhook.EncodePayload(webhook.Payload{
			Event: webhook.EventJobCompleted, TaskID: benchTaskID(i), TaskType: "image", Status: webhook.StatusCompleted,
			Data: benchData(nil, i), Timestamp: ts,
		})
		if err != nil {
			return nil, err
		}
	}
	return bodies, nil
}

// postSigned makes one attempt the way the engine's sender does
// (delivery/attempt.go): its own timeout, the stored body, the signature
// made for this attempt, the same headers, the answer read up to the same
// cap and closed so the connection is reused.
func (b *bench) postSigned(ctx context.Context, client *http.Client, target, secret string, body []byte, eventID string) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := time.Now().Unix()
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{"nanohook/" + b.cfg.Version}
	h[webhook.HeaderTimestamp] = []string{strconv.FormatInt(ts, 10)}
	h[webhook.HeaderSignature] = []string{webhook.Sign(secret, ts, body)}
	h[webhook.HeaderEventID] = []string{eventID}
	h[webhook.HeaderEvent] = []string{webhook.EventJobCompleted}
	h[webhook.HeaderDeliveryAttempt] = []string{"1"}
	resp, err := client.Transport.RoundTrip(req) // as the engine's sender calls it
	if err != nil {
		return err
	}
	_, _, err = egress.ReadCapped(resp.Body, nanohook.MaxStoredResponseBody, 64<<10)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}
