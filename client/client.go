// Package client is a Go client for nanohook's public API (customers: their
// endpoints and delivery history) and admin API (the platform: accounts, keys
// and job events). Each method is one route of api/routes.go; answers are
// unwrapped from the {"success":…} envelope into typed structs, and refusals
// become an *Error carrying the envelope's code, message and field.
//
// A Client talks to one listener with one credential: New(publicURL, apiKey)
// for the public methods, New(adminURL, adminToken) for the admin ones.
//
//	c := client.New("https://hooks.example.com", os.Getenv("NANOHOOK_API_KEY"))
//	wh, err := c.CreateWebhook(ctx, client.CreateWebhookParams{
//		URL:    "https://app.example.com/hooks/nano",
//		Events: []string{client.EventJobCompleted},
//	})
//	if e, ok := errors.AsType[*client.Error](err); ok && e.Field != "" {
//		// a validation error: e.Field names the input to fix
//	}
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds a whole call (connect, request, answer) when the
// Client builds its own http.Client. Every route answers in well under a
// second, except a test delivery, which waits for the endpoint (15 s by
// default on the server), so the bound leaves room for that.
const DefaultTimeout = 30 * time.Second

// maxAnswerBytes caps how much of an answer is read. The largest answers (a
// page of 100 deliveries, a delivery with its attempts' 4 KiB bodies) are far
// below it; the cap keeps a misconfigured base URL from making the client
// buffer anything it is sent.
const maxAnswerBytes = 32 << 20

// Client calls one nanohook listener. It is safe for concurrent use.
type Client struct {
	base      string
	token     string
	http      *http.Client
	userAgent string
	// The header values every request carries, made once: requests
	// share them instead of allocating their own. Nothing on the way
	// changes a value in place: Header.Set replaces the slice, and Add
	// grows it into a new array, as its capacity is its length.
	authHeader, uaHeader []string
}

// jsonHeader is the value of Accept and Content-Type, shared like
// Client.authHeader.
var jsonHeader = []string{"application/json"}

// Option adjusts a Client built by New.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc, for custom
// transports, proxies or timeouts. hc's own Timeout then applies instead of
// DefaultTimeout; contexts passed to methods bound calls either way.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.http = hc }
}

// WithUserAgent sets the User-Agent of every request, so the server's logs
// can tell programs apart.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a Client for the listener at baseURL ("http://127.0.0.1:8080",
// no /api/v1 suffix) that authenticates with token: an API key (nhk_…) for
// the public API, the admin token for the admin API.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		base:      strings.TrimRight(baseURL, "/"),
		token:     token,
		userAgent: "nanohook-go-client",
	}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: DefaultTimeout}
	}
	c.authHeader = []string{"Bearer " + c.token}
	c.uaHeader = []string{c.userAgent}
	return c
}

// Error is a call the server refused, or answered with something that is not
// nanohook's envelope. Branch on Code (the stable part of the contract) or
// StatusCode, never on Message.
type Error struct {
	Method, Path string // the call, for messages: "POST", "/api/v1/webhooks"
	StatusCode   int    // the HTTP status
	Code         string // "validation_error", "not_found", …; "" when the answer was no envelope
	Message      string // human-readable; safe to show
	Field        string // the offending input ("events", "data.items[0].id"), when there is one
	// Items lists every refused item of a refused batch publish; Code,
	// Message and Field describe the first.
	Items []ItemError
	// RetryAfter is the server's Retry-After (on 429 and 503), zero when
	// absent: how long to wait before calling again.
	RetryAfter time.Duration
}

// ItemError is one refused item of a batch publish.
type ItemError struct {
	Index   int    `json:"index"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nanohook: %s %s: %d", e.Method, e.Path, e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// envelope is the shape of every answer; NextCursor is present on lists.
type envelope struct {
	Success    bool            `json:"success"`
	Data       json.RawMessage `json:"data"`
	NextCursor *string         `json:"next_cursor"`
	Error      *struct {
		Code    string      `json:"code"`
		Message string      `json:"message"`
		Field   string      `json:"field"`
		Items   []ItemError `json:"items"`
	} `json:"error"`
}

// do sends one call and decodes the envelope's data into out (nil: ignore
// it). body, when not nil, is sent as JSON. It returns the next cursor of a
// list answer ("" on the last page or for other answers).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) (string, error) {
	var rd io.Reader
	if body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		// Strings go out as written: "<" stays "<", as the server would
		// store and deliver it anyway.
		enc.SetEscapeHTML(false)
		if err := enc.Encode(body); err != nil {
			return "", fmt.Errorf("nanohook: %s %s: encoding the request: %w", method, path, err)
		}
		rd = &buf
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return c.send(ctx, method, path, u, rd, out)
}

// doJSON is do with a body the caller encoded: sent as it is, with no
// copy and no encoding.
func (c *Client) doJSON(ctx context.Context, method, path string, body []byte, out any) error {
	_, err := c.send(ctx, method, path, c.base+path, bytes.NewReader(body), out)
	return err
}

// send makes the request for path (at u, its query added) with body (nil:
// none, else JSON), sends it and decodes the answer as do says.
func (c *Client) send(ctx context.Context, method, path, u string, body io.Reader, out any) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return "", fmt.Errorf("nanohook: %s %s: %w", method, path, err)
	}
	h := req.Header
	h["Authorization"] = c.authHeader
	h["Accept"] = jsonHeader
	h["User-Agent"] = c.uaHeader
	if body != nil {
		h["Content-Type"] = jsonHeader
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("nanohook: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return "", fmt.Errorf("nanohook: %s %s: reading the answer: %w", method, path, err)
	}
	var env envelope
	if jerr := json.Unmarshal(raw, &env); jerr != nil || (!env.Success && env.Error == nil) {
		return "", notEnvelope(method, path, resp, raw)
	}
	if !env.Success {
		return "", &Error{
			Method: method, Path: path, StatusCode: resp.StatusCode,
			Code: env.Error.Code, Message: env.Error.Message, Field: env.Error.Field, Items: env.Error.Items,
			RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
		}
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return "", fmt.Errorf("nanohook: %s %s: decoding data: %w", method, path, err)
		}
	}
	if env.NextCursor != nil {
		return *env.NextCursor, nil
	}
	return "", nil
}

// notEnvelope describes an answer that is not nanohook's (a proxy's error
// page, a wrong base URL) with its status and the start of its body.
func notEnvelope(method, path string, resp *http.Response, raw []byte) error {
	const show = 200
	msg := strings.TrimSpace(string(raw))
	if len(msg) > show {
		msg = msg[:show] + "…"
	}
	if msg == "" {
		msg = "empty answer"
	}
	return &Error{
		Method: method, Path: path, StatusCode: resp.StatusCode,
		Message:    "the answer is not a nanohook envelope: " + msg,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
}

// retryAfter reads a Retry-After value: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 32); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// checkID refuses ids no object can have before a path is built from them:
// a zero id would otherwise call a route other than the one meant.
func checkID(name string, id int64) error {
	if id <= 0 {
		return fmt.Errorf("nanohook: %s must be a positive id (got %d)", name, id)
	}
	return nil
}
