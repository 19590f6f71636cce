package sqlite

import (
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/nanohook/nanohook/store"
)

// wrap adds the operation to err and, when SQLite could not commit for a
// reason outside the request (lock contention, a read-only or full disk, I/O
// failure, a file it cannot open), marks it with store.ErrUnavailable so the
// API answers 503 and callers may retry, rather than 500.
func wrap(op string, err error) error {
	if isUnavailable(err) {
		return fmt.Errorf("sqlite: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// notFound is the error of a row that does not exist or that the account may
// not see: the two are deliberately indistinguishable.
func notFound(what string, id any) error {
	return fmt.Errorf("sqlite: %s %v: %w", what, id, store.ErrNotFound)
}

func isUnavailable(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	// Extended result codes are on, so the primary code is the low byte.
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN:
		return true
	}
	return false
}

// isBusy reports SQLITE_BUSY: another connection holds the lock.
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

// isCantOpen reports SQLITE_CANTOPEN: the file, or a journal beside it,
// could not be opened.
func isCantOpen(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_CANTOPEN
}

// isForeignKey reports a FOREIGN KEY constraint failure, which on inserts
// means the parent row (an account) does not exist.
func isForeignKey(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
