package client

import (
	"context"
	"net/http"
	"strconv"
)

// The admin API's calls, authenticated by the admin token. Serve them only
// to the platform: they create accounts and publish events for any account.

// CreateAccount creates an account and its first API key, shown this once.
func (c *Client) CreateAccount(ctx context.Context, name string) (*Account, error) {
	var out Account
	body := struct {
		Name string `json:"name"`
	}{name}
	if _, err := c.do(ctx, http.MethodPost, "/admin/v1/accounts", nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateAPIKey adds an API key to an account, for rotating keys: the old key
// keeps working until DeleteAPIKey.
func (c *Client) CreateAPIKey(ctx context.Context, accountID int64) (*APIKey, error) {
	if err := checkID("account id", accountID); err != nil {
		return nil, err
	}
	var out APIKey
	if _, err := c.do(ctx, http.MethodPost, accountPath(accountID)+"/keys", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteAPIKey revokes one key of an account.
func (c *Client) DeleteAPIKey(ctx context.Context, accountID, keyID int64) error {
	if err := checkID("account id", accountID); err != nil {
		return err
	}
	if err := checkID("key id", keyID); err != nil {
		return err
	}
	_, err := c.do(ctx, http.MethodDelete, accountPath(accountID)+"/keys/"+strconv.FormatInt(keyID, 10), nil, nil, nil)
	return err
}

// PublishEvent publishes one job event. A nil error means the event and its
// deliveries are committed: nothing acknowledged is lost.
func (c *Client) PublishEvent(ctx context.Context, e JobEvent) (*PublishResult, error) {
	var out PublishResult
	if _, err := c.do(ctx, http.MethodPost, "/admin/v1/events", nil, e, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PublishBatch publishes up to 1000 job events. If any is invalid, nothing
// is stored and the *Error lists every refused item in Items. Results are
// in the order of events. The server writes a large batch in several
// transactions, so a failure part way (a 503, a lost connection) may leave
// its first events committed: publishing the same events again is safe,
// those answer as duplicates and the rest are written.
func (c *Client) PublishBatch(ctx context.Context, events []JobEvent) ([]PublishResult, error) {
	body := struct {
		Events []JobEvent `json:"events"`
	}{events}
	var out struct {
		Results []PublishResult `json:"results"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/admin/v1/events/batch", nil, body, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}

// PublishEventJSON is PublishEvent for a caller that encodes the event
// itself: body is one JobEvent's JSON, sent as it is. It saves encoding
// and copying the request, for load generators and other hot loops that
// reuse one buffer; the buffer may be reused once it returns.
func (c *Client) PublishEventJSON(ctx context.Context, body []byte) (*PublishResult, error) {
	var out PublishResult
	if err := c.doJSON(ctx, http.MethodPost, "/admin/v1/events", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PublishBatchJSON is PublishBatch for a caller that encodes the events
// itself: body is {"events":[…]}, sent as it is, as PublishEventJSON's.
func (c *Client) PublishBatchJSON(ctx context.Context, body []byte) ([]PublishResult, error) {
	var out struct {
		Results []PublishResult `json:"results"`
	}
	if err := c.doJSON(ctx, http.MethodPost, "/admin/v1/events/batch", body, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}

func accountPath(id int64) string {
	return "/admin/v1/accounts/" + strconv.FormatInt(id, 10)
}
