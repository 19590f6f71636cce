package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	"github.com/nanohook/nanohook"
)

// Page sizes of list calls.
const (
	defaultPageLimit = 100
	maxPageLimit     = 100
)

// page is a parsed limit and cursor.
type page struct {
	afterID int64
	limit   int
}

// parsePage reads limit (1..maxPageLimit) and cursor from a query. A cursor
// is opaque to clients; it is the base64url form of the list it belongs to
// (scope, see webhookScope and deliveryScope) and the last id seen, and
// anything that does not decode to exactly that form, or belongs to another
// list (another account's, another endpoint's, another kind of list), is
// refused rather than guessed at: a cursor handed from one list to another
// is a client bug that should surface, not a page of unrelated rows.
func parsePage(q url.Values, scope string) (page, error) {
	p := page{limit: defaultPageLimit}
	for _, name := range []string{"limit", "cursor"} {
		if err := onlyOnce(q, name); err != nil {
			return page{}, err
		}
	}
	if s := q.Get("limit"); s != "" || q.Has("limit") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageLimit {
			return page{}, nanohook.Errorf(nanohook.CodeInvalidRequest, "limit",
				"limit: must be an integer from 1 to %d", maxPageLimit)
		}
		p.limit = n
	}
	if c := q.Get("cursor"); c != "" || q.Has("cursor") {
		id, ok := decodeCursor(c, scope)
		if !ok {
			return page{}, nanohook.Errorf(nanohook.CodeInvalidRequest, "cursor",
				"cursor: is not a cursor returned by this API for this list")
		}
		p.afterID = id
	}
	return p, nil
}

// onlyOnce refuses a query parameter given more than once ("limit=1&limit=
// 500"): which one counts is a guess that proxies, caches and this server
// could each make differently, so none is made.
func onlyOnce(q url.Values, name string) error {
	if len(q[name]) > 1 {
		return nanohook.Errorf(nanohook.CodeInvalidRequest, name, "%s: must be given at most once", name)
	}
	return nil
}

// webhookScope names the endpoint list of an account in its cursors.
func webhookScope(accountID int64) string {
	return "w" + strconv.FormatInt(accountID, 10)
}

// deliveryScope names the delivery history of one endpoint of an account in
// its cursors.
func deliveryScope(accountID, endpointID int64) string {
	return "d" + strconv.FormatInt(accountID, 10) + "-" + strconv.FormatInt(endpointID, 10)
}

// pageOf turns the rows of a list query, which asked for one more row than
// the page holds (limit+1, to tell whether another page follows), into the
// page's JSON items and the cursor of the next page (nil on the last), bound
// to the list's scope.
func pageOf[T, J any](rows []T, limit int, scope string, id func(T) int64, toJSON func(T) J) ([]J, *string) {
	var next *string
	if len(rows) > limit {
		rows = rows[:limit]
		c := encodeCursor(scope, id(rows[len(rows)-1]))
		next = &c
	}
	out := make([]J, 0, len(rows))
	for _, r := range rows {
		out = append(out, toJSON(r))
	}
	return out, next
}

// budgetPageOf is pageOf for lists whose items vary in size with what a
// receiver sent: the page also ends, with the cursor of its last item, once
// its items' JSON would pass budget bytes, so an answer stays bounded
// however large its rows are. The first item is always kept (every page
// moves on), so one item's size is the most a page exceeds budget by. The
// items come back encoded, as writeJSON writes them, so that each is
// encoded once.
func budgetPageOf[T, J any](rows []T, limit, budget int, scope string, id func(T) int64, toJSON func(T) J) ([]json.RawMessage, *string, error) {
	rows = rows[:min(len(rows), limit+1)]
	var buf bytes.Buffer
	enc := newAnswerEncoder(&buf)
	ends := make([]int, 0, min(len(rows), limit))
	for i, r := range rows {
		if i == limit {
			break // the extra row only tells that another page follows
		}
		if err := enc.Encode(toJSON(r)); err != nil {
			return nil, nil, err
		}
		if i > 0 && buf.Len() > budget {
			break
		}
		ends = append(ends, buf.Len())
	}
	out := make([]json.RawMessage, len(ends))
	start := 0
	for i, end := range ends {
		out[i] = bytes.TrimSuffix(buf.Bytes()[start:end], []byte("\n"))
		start = end
	}
	var next *string
	if len(ends) < len(rows) {
		c := encodeCursor(scope, id(rows[len(ends)-1]))
		next = &c
	}
	return out, next, nil
}

// encodeCursor makes the cursor of the list scope that continues after id.
func encodeCursor(scope string, id int64) string {
	b := append([]byte(scope), '.')
	return base64.RawURLEncoding.EncodeToString(strconv.AppendInt(b, id, 10))
}

// decodeCursor accepts only what encodeCursor makes for scope: a positive
// id in its canonical decimal form after the scope, base64url without
// padding.
func decodeCursor(c, scope string) (int64, bool) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(b), scope+".")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || id <= 0 || encodeCursor(scope, id) != c {
		return 0, false
	}
	return id, true
}
