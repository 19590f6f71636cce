package sqlshared

import (
	"strconv"
	"strings"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// EventColumns is the column list an event of the events API is read
// with, over events ev, in the order each driver's scanEvent reads it.
const EventColumns = `ev.pk, ev.id, ev.account_id, ev.type, ev.task_id, ev.task_type, ev.payload, ev.occurred_at, ev.created_at`

// publishedOnly leaves out the events of test calls: the events API shows
// what the platform published.
const publishedOnly = `ev.type <> '` + string(nanohook.EventPing) + `'`

// EventByIDSQL reads one published event with EventColumns: $1 its public
// id, $2 its account.
const EventByIDSQL = `SELECT ` + EventColumns + ` FROM events ev
	WHERE ev.id = $1 AND ev.account_id = $2 AND ` + publishedOnly

// EventDeliveriesColumns is what an event shows of each of its deliveries,
// over deliveries d: its event's pk first, then store.EventDelivery's
// fields in order.
const EventDeliveriesColumns = `d.event_pk, d.id, d.endpoint_id, d.status`

// ListEventsSQL is the statement of one page of store.ListEventsParams,
// with $N parameters, and its arguments; times are bound as the driver
// stores them (at). The page walks the account's events backwards by pk
// (events_account) from the cursor; only the filters given are part of the
// statement, and each is checked on that walk, so a rare type or task
// reads past the events it skips, bounded by the retained history.
func ListEventsSQL(p store.ListEventsParams, at func(time.Time) any) (string, []any) {
	var q strings.Builder
	args := []any{p.AccountID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	q.WriteString(`SELECT ` + EventColumns + ` FROM events ev
		WHERE ev.account_id = $1 AND ` + publishedOnly)
	if p.BeforePK > 0 {
		q.WriteString(` AND ev.pk < ` + arg(p.BeforePK))
	}
	if p.Type != "" {
		q.WriteString(` AND ev.type = ` + arg(string(p.Type)))
	}
	if p.TaskID != "" {
		q.WriteString(` AND ev.task_id = ` + arg(p.TaskID))
	}
	if !p.Since.IsZero() {
		q.WriteString(` AND ev.created_at >= ` + arg(at(p.Since)))
	}
	if !p.Until.IsZero() {
		q.WriteString(` AND ev.created_at < ` + arg(at(p.Until)))
	}
	q.WriteString(` ORDER BY ev.pk DESC LIMIT ` + arg(store.ListLimit(p.Limit)))
	return q.String(), args
}

// AttachDeliveries gives each event its deliveries, from rows of
// EventDeliveriesColumns; rows of other events are ignored.
func AttachDeliveries(events []store.EventRecord, rows Rows) error {
	at := make(map[int64]int, len(events))
	for i := range events {
		at[events[i].PK] = i
		events[i].Deliveries = []store.EventDelivery{}
	}
	ds, err := Collect(rows, scanEventDelivery)
	if err != nil {
		return err
	}
	for _, v := range ds {
		if i, ok := at[v.eventPK]; ok {
			events[i].Deliveries = append(events[i].Deliveries, v.EventDelivery)
		}
	}
	return nil
}

// eventDeliveryRow is one row of EventDeliveriesColumns.
type eventDeliveryRow struct {
	eventPK int64
	store.EventDelivery
}

func scanEventDelivery(r Scanner) (eventDeliveryRow, error) {
	var v eventDeliveryRow
	var status string
	err := r.Scan(&v.eventPK, &v.DeliveryID, &v.EndpointID, &status)
	v.Status = nanohook.DeliveryStatus(status)
	return v, err
}
