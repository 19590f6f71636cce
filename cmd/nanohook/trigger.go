package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/webhook"
)

// triggerTimeout is nanohook's default delivery timeout: a receiver slower
// than this would fail real deliveries too.
const triggerTimeout = 15 * time.Second

// triggerSampleData is the job data sent when --data is not given: the
// documentation's example for job.completed, a typical failure for
// job.failed.
var triggerSampleData = map[string]string{
	webhook.EventJobCompleted: `{"url":"https://cdn.example.com/image.png","credits_charged":6}`,
	webhook.EventJobFailed:    `{"error":"generation failed: model timeout","credits_charged":0}`,
}

const triggerUsage = "usage: nanohook trigger job.completed|job.failed --to URL --secret S [--data JSON] [--task-id ID] [--task-type T]"

// runTrigger sends one delivery to a receiver exactly as nanohook would send
// the first attempt of a job event: the canonical body, every header, signed
// now. It prints the request and the answer, and fails unless the answer is
// a 2xx, the only answer nanohook counts as delivered.
func runTrigger(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var event string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		event, args = args[0], args[1:]
	}
	fs := newFlagSet("trigger", stderr)
	to := fs.String("to", "", "the receiver's URL (required)")
	secret := fs.String("secret", "", "the endpoint's signing secret (required)")
	data := fs.String("data", "", "the job's data, a JSON object (default: a sample for the event)")
	taskID := fs.String("task-id", "", "the task id (default: a random task_…)")
	taskType := fs.String("task-type", "image", "the task type")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if _, ok := triggerSampleData[event]; !ok {
		return fmt.Errorf("trigger: event %q: want job.completed or job.failed first\n%s", event, triggerUsage)
	}
	if *to == "" {
		return fmt.Errorf("--to is required\n%s", triggerUsage)
	}
	target, err := parseTargetURL("to", *to)
	if err != nil {
		return err
	}
	if *secret == "" {
		return fmt.Errorf("--secret is required\n%s", triggerUsage)
	}
	if *data == "" {
		*data = triggerSampleData[event]
	}
	if *taskID == "" {
		*taskID = "task_" + strings.TrimPrefix(nanohook.NewEventID(), "evt_")
	}
	now := time.Now()
	body, err := triggerPayload(event, *taskID, *taskType, *data, now)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	ts := now.Unix()
	headers := []nanohook.Header{ // in the order and spelling of delivery/attempt.go
		{Name: "Content-Type", Value: "application/json"},
		{Name: "User-Agent", Value: "nanohook/" + version},
		{Name: webhook.HeaderTimestamp, Value: strconv.FormatInt(ts, 10)},
		{Name: webhook.HeaderSignature, Value: webhook.Sign(*secret, ts, body)},
		{Name: webhook.HeaderEventID, Value: nanohook.NewEventID()},
		{Name: webhook.HeaderEvent, Value: event},
		{Name: webhook.HeaderDeliveryAttempt, Value: "1"},
	}
	fmt.Fprintf(stdout, "→ POST %s\n", target)
	for _, h := range headers {
		req.Header[h.Name] = []string{h.Value}
		fmt.Fprintf(stdout, "  %s: %s\n", h.Name, h.Value)
	}
	fmt.Fprintf(stdout, "\n  %s\n\n", body)
	return triggerSend(req, stdout)
}

// triggerPayload builds the body the server would build for this job event
// (api/events.go): data canonicalised, the documented key order, the event's
// time in RFC 3339 UTC seconds.
func triggerPayload(event, taskID, taskType, data string, now time.Time) ([]byte, error) {
	if t := bytes.TrimSpace([]byte(data)); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("--data: must be a JSON object, such as '{\"url\":\"https://cdn.example.com/a.png\"}'")
	}
	// The server's rule for event data: I-JSON in canonical form.
	canonical, err := webhook.CanonicalizeIJSON([]byte(data))
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	status := webhook.StatusCompleted
	if event == webhook.EventJobFailed {
		status = webhook.StatusFailed
	}
	body, err := webhook.EncodePayload(webhook.Payload{
		Event: event, TaskID: taskID, TaskType: taskType, Status: status,
		Data: canonical, Timestamp: now.UTC().Format(time.RFC3339),
	})
	if err != nil {
		var ce *webhook.CanonicalError
		if errors.As(err, &ce) && ce.Path != "" {
			return nil, fmt.Errorf("--%s: %s", strings.ReplaceAll(ce.Path, "_", "-"), ce.Reason)
		}
		return nil, err
	}
	return body, nil
}

// triggerSend sends the request as nanohook does (no redirects followed,
// the delivery timeout) and prints the answer, its body cut where nanohook's
// history cuts it.
func triggerSend(req *http.Request, stdout io.Writer) error {
	hc := &http.Client{
		// Like nanohook's egress client: no proxy from the environment, no
		// Accept-Encoding, so the receiver sees the headers a delivery has.
		Transport:     &http.Transport{Proxy: nil, DisableCompression: true},
		Timeout:       triggerTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer hc.CloseIdleConnections()
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("no answer from --to %s: %w (nanohook would retry)", req.URL, withoutURL(err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, nanohook.MaxStoredResponseBody))
	fmt.Fprintf(stdout, "← %s in %s\n", resp.Status, time.Since(start).Round(time.Millisecond))
	if len(answer) > 0 {
		fmt.Fprintf(stdout, "  %s\n", bytes.TrimRight(answer, "\n"))
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code >= 300 && code < 400:
		return fmt.Errorf("the receiver answered %s: nanohook does not follow redirects (Location: %s), so this delivery would fail", resp.Status, resp.Header.Get("Location"))
	default:
		return fmt.Errorf("the receiver answered %s: nanohook would count this delivery as failed and retry it", resp.Status)
	}
}
