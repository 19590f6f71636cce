package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The public API's calls, authenticated by an account's API key. Another
// account's ids answer 404 (an *Error with Code "not_found"), never 403.

// ListWebhooks returns one page of the account's endpoints, by ascending id.
func (c *Client) ListWebhooks(ctx context.Context, p PageParams) (*Page[Webhook], error) {
	var items []Webhook
	next, err := c.do(ctx, http.MethodGet, "/api/v1/webhooks", p.query(), nil, &items)
	if err != nil {
		return nil, err
	}
	return &Page[Webhook]{Items: items, NextCursor: next}, nil
}

// Webhooks iterates over all the account's endpoints, fetching pages of
// pageSize (0: the server's default) as it goes. An error ends the iteration
// after being yielded once.
func (c *Client) Webhooks(ctx context.Context, pageSize int) iter.Seq2[Webhook, error] {
	return paginate(PageParams{Limit: pageSize}, func(p PageParams) (*Page[Webhook], error) {
		return c.ListWebhooks(ctx, p)
	})
}

// CreateWebhook registers an endpoint. The answer holds its signing secret,
// which no other call ever shows again.
func (c *Client) CreateWebhook(ctx context.Context, p CreateWebhookParams) (*CreatedWebhook, error) {
	var out CreatedWebhook
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/webhooks", nil, p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetWebhook returns one endpoint.
func (c *Client) GetWebhook(ctx context.Context, id int64) (*Webhook, error) {
	return c.webhookCall(ctx, http.MethodGet, id, nil)
}

// UpdateWebhook changes the fields set in p and returns the endpoint as it is
// now.
func (c *Client) UpdateWebhook(ctx context.Context, id int64, p UpdateWebhookParams) (*Webhook, error) {
	return c.webhookCall(ctx, http.MethodPatch, id, p)
}

// DeleteWebhook removes an endpoint; its pending deliveries are cancelled.
func (c *Client) DeleteWebhook(ctx context.Context, id int64) error {
	if err := checkID("webhook id", id); err != nil {
		return err
	}
	_, err := c.do(ctx, http.MethodDelete, webhookPath(id, ""), nil, nil, nil)
	return err
}

// RotateSecret replaces an endpoint's signing secret; p may be nil for the
// defaults (a generated secret, the old one valid 24 more hours).
func (c *Client) RotateSecret(ctx context.Context, id int64, p *RotateSecretParams) (*RotatedSecret, error) {
	if err := checkID("webhook id", id); err != nil {
		return nil, err
	}
	var body any
	if p != nil {
		body = p
	}
	var out RotatedSecret
	if _, err := c.do(ctx, http.MethodPost, webhookPath(id, "/rotate-secret"), nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TestWebhook sends a signed ping to the endpoint now and returns the
// attempt. The call waits for the endpoint, so it can take as long as the
// server's delivery timeout.
func (c *Client) TestWebhook(ctx context.Context, id int64) (*TestDelivery, error) {
	if err := checkID("webhook id", id); err != nil {
		return nil, err
	}
	var out TestDelivery
	if _, err := c.do(ctx, http.MethodPost, webhookPath(id, "/test"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListDeliveries returns one page of an endpoint's deliveries, newest first.
func (c *Client) ListDeliveries(ctx context.Context, webhookID int64, p ListDeliveriesParams) (*Page[Delivery], error) {
	if err := checkID("webhook id", webhookID); err != nil {
		return nil, err
	}
	q := p.query()
	if p.Status != "" {
		q.Set("status", p.Status)
	}
	if p.Event != "" {
		q.Set("event", p.Event)
	}
	setTaskAndTimes(q, p.TaskID, p.Since, p.Until)
	var items []Delivery
	next, err := c.do(ctx, http.MethodGet, webhookPath(webhookID, "/deliveries"), q, nil, &items)
	if err != nil {
		return nil, err
	}
	return &Page[Delivery]{Items: items, NextCursor: next}, nil
}

// Deliveries iterates over all of an endpoint's deliveries that match p,
// newest first, starting at p.Cursor. An error ends the iteration after being
// yielded once.
func (c *Client) Deliveries(ctx context.Context, webhookID int64, p ListDeliveriesParams) iter.Seq2[Delivery, error] {
	return paginate(p.PageParams, func(pp PageParams) (*Page[Delivery], error) {
		p.PageParams = pp
		return c.ListDeliveries(ctx, webhookID, p)
	})
}

// GetDelivery returns one delivery with its newest attempts.
func (c *Client) GetDelivery(ctx context.Context, id int64) (*DeliveryDetail, error) {
	if err := checkID("delivery id", id); err != nil {
		return nil, err
	}
	var out DeliveryDetail
	if _, err := c.do(ctx, http.MethodGet, deliveryPath(id, ""), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RetryDelivery makes a delivery due now and returns it; the attempt itself
// happens afterwards. A delivery whose endpoint is disabled or deleted is
// refused with 409.
func (c *Client) RetryDelivery(ctx context.Context, id int64) (*Delivery, error) {
	if err := checkID("delivery id", id); err != nil {
		return nil, err
	}
	var out Delivery
	if _, err := c.do(ctx, http.MethodPost, deliveryPath(id, "/retry"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Recover re-queues the endpoint's failed deliveries created in the range of
// p and returns how many it queued. Call it after fixing (and, if need be,
// re-enabling) an endpoint; calling it again finishes an interrupted one.
func (c *Client) Recover(ctx context.Context, webhookID int64, p RecoverParams) (int, error) {
	if err := checkID("webhook id", webhookID); err != nil {
		return 0, err
	}
	body := struct {
		Since string `json:"since"`
		Until string `json:"until,omitempty"`
	}{Since: p.Since.UTC().Format(time.RFC3339)}
	if !p.Until.IsZero() {
		body.Until = p.Until.UTC().Format(time.RFC3339)
	}
	var out struct {
		Queued int `json:"queued"`
	}
	if _, err := c.do(ctx, http.MethodPost, webhookPath(webhookID, "/recover"), nil, body, &out); err != nil {
		return 0, err
	}
	return out.Queued, nil
}

// webhookCall is GET or PATCH of one endpoint.
func (c *Client) webhookCall(ctx context.Context, method string, id int64, body any) (*Webhook, error) {
	if err := checkID("webhook id", id); err != nil {
		return nil, err
	}
	var out Webhook
	if _, err := c.do(ctx, method, webhookPath(id, ""), nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func webhookPath(id int64, suffix string) string {
	return "/api/v1/webhooks/" + strconv.FormatInt(id, 10) + suffix
}

func deliveryPath(id int64, suffix string) string {
	return "/api/v1/deliveries/" + strconv.FormatInt(id, 10) + suffix
}

// query is the limit and cursor of a list call.
func (p PageParams) query() url.Values {
	q := url.Values{}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Cursor != "" {
		q.Set("cursor", p.Cursor)
	}
	return q
}

// paginate walks pages from first until a page has no next cursor.
func paginate[T any](first PageParams, fetch func(PageParams) (*Page[T], error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		p := first
		for {
			page, err := fetch(p)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range page.Items {
				if !yield(item, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			p.Cursor = page.NextCursor
		}
	}
}
