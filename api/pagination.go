package api

import (
	"encoding/base64"
	"net/url"
	"strconv"

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
// is opaque to clients; it is the base64url form of the last id seen, and
// anything that does not decode to exactly that form is refused rather than
// guessed at.
func parsePage(q url.Values) (page, error) {
	p := page{limit: defaultPageLimit}
	if s := q.Get("limit"); s != "" || q.Has("limit") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageLimit {
			return page{}, nanohook.Errorf(nanohook.CodeInvalidRequest, "limit",
				"limit: must be an integer from 1 to %d", maxPageLimit)
		}
		p.limit = n
	}
	if c := q.Get("cursor"); c != "" || q.Has("cursor") {
		id, ok := decodeCursor(c)
		if !ok {
			return page{}, nanohook.Errorf(nanohook.CodeInvalidRequest, "cursor",
				"cursor: is not a cursor returned by this API")
		}
		p.afterID = id
	}
	return p, nil
}

// pageOf turns the rows of a list query, which asked for one more row than
// the page holds (limit+1, to tell whether another page follows), into the
// page's JSON items and the cursor of the next page (nil on the last).
func pageOf[T, J any](rows []T, limit int, id func(T) int64, toJSON func(T) J) ([]J, *string) {
	var next *string
	if len(rows) > limit {
		rows = rows[:limit]
		c := encodeCursor(id(rows[len(rows)-1]))
		next = &c
	}
	out := make([]J, 0, len(rows))
	for _, r := range rows {
		out = append(out, toJSON(r))
	}
	return out, next
}

// encodeCursor makes the cursor that continues after id.
func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString(strconv.AppendInt(nil, id, 10))
}

// decodeCursor accepts only what encodeCursor makes: a positive id in its
// canonical decimal form, base64url without padding.
func decodeCursor(c string) (int64, bool) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	if err != nil {
		return 0, false
	}
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || id <= 0 || encodeCursor(id) != c {
		return 0, false
	}
	return id, true
}
