package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Per-statement overhead (database/sql, binding, starting a fresh VM) costs
// about as much as the row work itself, so CompleteDeliveries writes in
// multi-row statements. They are prepared once, at Open, in power-of-two
// sizes up to chunkRows: a batch of any length is a run of full chunks plus
// its remainder's binary decomposition (45 = 32 + 8 + 4 + 1), so no
// statement is ever prepared while a transaction holds the only writer
// connection. 64 rows of 10 values (640, the widest statement, the attempts
// insert) stay far below SQLite's limit on bound variables (32766 since
// 3.32; chunk_test.go checks it).
const chunkRows = 64

// chunkStmts is one multi-row statement prepared for 1, 2, 4, … chunkRows
// rows of cols values each.
type chunkStmts struct {
	cols   int
	bySize map[int]*sql.Stmt
}

func prepareChunks(ctx context.Context, db *sql.DB, cols int, build func(values string) string) (*chunkStmts, error) {
	c := &chunkStmts{cols: cols, bySize: make(map[int]*sql.Stmt)}
	for n := 1; n <= chunkRows; n *= 2 {
		st, err := db.PrepareContext(ctx, build(valuesRows(n, cols)))
		if err != nil {
			_ = c.close()
			return nil, fmt.Errorf("%d rows: %w", n, err)
		}
		c.bySize[n] = st
	}
	return c, nil
}

// exec runs the statement over rows [0, n), where appendRow appends the
// cols values of row i to args.
func (c *chunkStmts) exec(ctx context.Context, tx *sql.Tx, n int, appendRow func(args []any, i int) []any) error {
	args := make([]any, 0, c.cols*min(n, chunkRows))
	for lo := 0; lo < n; {
		size := chunkRows
		for size > n-lo {
			size /= 2
		}
		args = args[:0]
		for i := lo; i < lo+size; i++ {
			args = appendRow(args, i)
		}
		if _, err := tx.StmtContext(ctx, c.bySize[size]).ExecContext(ctx, args...); err != nil {
			return err
		}
		lo += size
	}
	return nil
}

func (c *chunkStmts) close() error {
	if c == nil {
		return nil
	}
	var errs []error
	for _, st := range c.bySize {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// valuesRows is "(?, ?), (?, ?)" for rows=2, cols=2.
func valuesRows(rows, cols int) string {
	row := "(" + strings.Repeat("?, ", cols-1) + "?)"
	var b strings.Builder
	b.Grow(rows * (len(row) + 2))
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}
