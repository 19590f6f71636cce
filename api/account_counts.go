package api

import (
	"sync"
	"time"
)

// accountCounts remembers, for the whole node, the accounts that publishes
// named and how many live endpoints each had, so that a platform publishing
// one event a request does not read them once a request (a twentieth of
// such a request's cost on SQLite). Accounts are never deleted, so one seen
// to exist keeps existing; its endpoint count only sizes publish
// transactions (planChunks) and is read again after accountCountsTTL. The
// count was never exact (an endpoint may be created between the count and
// the publish's transaction); remembering it widens that window to
// accountCountsTTL, within which a transaction may hold more rows than
// chunkRows, by at most the account's endpoint limit. Accounts not found
// are not remembered: they are looked up each time, as before.
type accountCounts struct {
	mu   sync.Mutex
	seen map[int64]accountCount
}

type accountCount struct {
	endpoints int
	at        time.Time
}

const (
	accountCountsTTL = 250 * time.Millisecond
	// accountCountsMax bounds the memory: past it the map starts afresh.
	accountCountsMax = 10_000
)

// get returns the endpoint count of an account seen within
// accountCountsTTL before now.
func (c *accountCounts) get(id int64, now time.Time) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.seen[id]
	if !ok || now.Sub(e.at) >= accountCountsTTL || now.Before(e.at) {
		return 0, false
	}
	return e.endpoints, true
}

// put remembers an existing account's endpoint count, read at now.
func (c *accountCounts) put(id int64, endpoints int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil || len(c.seen) >= accountCountsMax {
		c.seen = map[int64]accountCount{}
	}
	c.seen[id] = accountCount{endpoints: endpoints, at: now}
}
