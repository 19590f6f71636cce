package nanohook

import "time"

// DeliveryStatus is where one event's delivery to one endpoint stands.
type DeliveryStatus string

// Delivery states. pending covers both "due now" and "waiting for a retry";
// succeeded, failed and cancelled are final until a customer retries.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"
	DeliveryCancelled DeliveryStatus = "cancelled"
)

// Delivery is one event owed to one endpoint.
type Delivery struct {
	ID            int64
	AccountID     int64
	EndpointID    int64
	EventID       string
	EventType     EventType
	Status        DeliveryStatus
	Attempts      int       // attempts made so far
	NextAttemptAt time.Time // when pending: not before this time
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Payload is the body every attempt sends: the event's canonical bytes,
	// exactly as signed. Only a delivery's detail (GetDelivery) reads it;
	// listings leave it nil.
	Payload []byte
}

// Attempt is one HTTP request made for a delivery and what came back.
type Attempt struct {
	ID             int64
	DeliveryID     int64
	Number         int // 1, 2, …
	StartedAt      time.Time
	Duration       time.Duration
	ResponseStatus int    // 0 when no response arrived
	ResponseBody   string // first MaxStoredResponseBody bytes
	Location       string // Location header of a 3xx, so the customer can fix the URL
	Error          string // transport error or why the response counts as failure

	// RequestHeaders are the headers nanohook set on the request, in the
	// order it set them. The X-Nano-Signature* values are included: they
	// are HMACs of the payload, not secrets. The request body is not
	// repeated here; it is the event's payload.
	RequestHeaders []Header
	// RemoteAddr is the "ip:port" nanohook connected to, "" when no
	// connection was made.
	RemoteAddr string
}

// Header is one HTTP header field as sent.
type Header struct {
	Name  string
	Value string
}

// MaxStoredResponseBody is how much of a response body an attempt keeps.
const MaxStoredResponseBody = 4 << 10
