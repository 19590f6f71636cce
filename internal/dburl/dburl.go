// Package dburl reads the database URLs that serve and bench take in --db.
package dburl

import "strings"

// IsPostgres tells a PostgreSQL URL from a SQLite file name.
func IsPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// Redact hides a password in a database URL before it is printed.
func Redact(s string) string {
	at := strings.LastIndex(s, "@")
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	creds := s[scheme+3 : at]
	if i := strings.Index(creds, ":"); i >= 0 {
		return s[:scheme+3] + creds[:i] + ":xxxxx" + s[at:]
	}
	return s
}
