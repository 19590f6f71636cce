package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nanohook/nanohook/store"
)

// wrap adds the operation to err and, when the database could not do the
// work for a reason outside the request (unreachable, restarting, the
// connection cut, a deadlock or serialization failure, read-only), marks it
// with store.ErrUnavailable so that the API answers 503 and callers may
// retry, rather than 500. Context errors pass through unmarked: the caller
// gave up, the database did not fail.
func wrap(op string, err error) error {
	if isUnavailable(err) {
		return fmt.Errorf("postgres: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// notFound is the error of a row that does not exist or that the account may
// not see: the two are deliberately indistinguishable.
func notFound(what string, id any) error {
	return fmt.Errorf("postgres: %s %v: %w", what, id, store.ErrNotFound)
}

func isUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case strings.HasPrefix(pgErr.Code, "53"): // insufficient resources: disk full, out of memory, too many connections
			return true
		case strings.HasPrefix(pgErr.Code, "57P"): // admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped
			return true
		}
		switch pgErr.Code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"55P03", // lock_not_available
			"57014", // query_canceled: statement_timeout (a cancelled context is a context error instead)
			"25006", // read_only_sql_transaction: a standby, or the database set read-only
			"58030": // io_error
			return true
		}
		return false
	}
	// Failing to connect at all (refused, DNS, TLS, authentication) is the
	// database being out of reach for this node.
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	// The connection broke under a statement: the server went away, the
	// network dropped, or a previous failure closed the connection.
	if errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// isForeignKey reports a foreign key violation, which on inserts means the
// parent row (an account) does not exist.
func isForeignKey(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}
