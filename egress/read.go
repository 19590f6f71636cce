package egress

import "io"

// discardBufferSize is the fixed buffer that drains bytes beyond the kept
// prefix.
const discardBufferSize = 4 << 10

// ReadCapped reads r until EOF or until max bytes have been read, whichever
// comes first, and returns the first keep bytes and the number of bytes read.
// A receiver's response body is untrusted: reading a little of it lets the
// connection be reused, reading all of it would let a receiver stream forever.
// ReadCapped never reads more than max bytes from r and never holds more than
// keep bytes (plus a small fixed buffer) in memory.
//
// Reaching max is not an error: n == max tells the caller the body may have
// been cut. err is the first read error other than io.EOF; kept and n are
// valid alongside it.
func ReadCapped(r io.Reader, keep int, max int64) (kept []byte, n int64, err error) {
	if max < 0 {
		max = 0
	}
	if keep < 0 {
		keep = 0
	}
	if int64(keep) > max {
		keep = int(max)
	}
	// LimitedReader reports io.EOF at max without touching r again.
	lr := &io.LimitedReader{R: r, N: max}

	// Grow the kept prefix as bytes arrive: most answers are far shorter
	// than keep, so allocating keep bytes up front would waste memory.
	for len(kept) < keep {
		if len(kept) == cap(kept) {
			next := make([]byte, len(kept), min(keep, 2*cap(kept)+512))
			copy(next, kept)
			kept = next
		}
		var m int
		m, err = lr.Read(kept[len(kept):cap(kept)])
		kept = kept[:len(kept)+m]
		n += int64(m)
		if err != nil {
			return kept, n, eofIsNil(err)
		}
	}
	if lr.N == 0 {
		return kept, n, nil
	}

	buf := make([]byte, min(discardBufferSize, lr.N))
	for {
		var m int
		m, err = lr.Read(buf)
		n += int64(m)
		if err != nil {
			return kept, n, eofIsNil(err)
		}
	}
}

func eofIsNil(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}
