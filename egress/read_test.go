package egress

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// endless is a reader that never ends, counting what it handed out.
type endless struct{ read int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte('a' + (e.read+int64(i))%26)
	}
	e.read += int64(len(p))
	return len(p), nil
}

func TestReadCappedEndless(t *testing.T) {
	t.Parallel()
	src := &endless{}
	kept, n, err := ReadCapped(src, 4<<10, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if n != 64<<10 {
		t.Errorf("n = %d, want %d", n, 64<<10)
	}
	if src.read > 64<<10+1 {
		t.Errorf("read %d bytes from the source, want at most max+1", src.read)
	}
	if len(kept) != 4<<10 || cap(kept) > 4<<10 {
		t.Errorf("kept len %d cap %d, want 4096 and no more", len(kept), cap(kept))
	}
	if !bytes.HasPrefix(kept, []byte("abcdefghijklmnopqrstuvwxyzabc")) {
		t.Errorf("kept starts %q, want the first bytes", kept[:30])
	}
}

func TestReadCapped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		keep  int
		max   int64
		kept  string
		n     int64
		chunk bool // deliver one byte per Read
	}{
		{name: "short body", in: "hello", keep: 3, max: 100, kept: "hel", n: 5},
		{name: "whole body kept", in: "hello", keep: 10, max: 100, kept: "hello", n: 5},
		{name: "exactly max", in: "hello", keep: 10, max: 5, kept: "hello", n: 5},
		{name: "cut at max", in: "hello world", keep: 3, max: 8, kept: "hel", n: 8},
		{name: "keep above max", in: "hello world", keep: 100, max: 4, kept: "hell", n: 4},
		{name: "keep zero", in: "hello", keep: 0, max: 100, kept: "", n: 5},
		{name: "max zero", in: "hello", keep: 3, max: 0, kept: "", n: 0},
		{name: "negative", in: "hello", keep: -1, max: -1, kept: "", n: 0},
		{name: "empty", in: "", keep: 3, max: 100, kept: "", n: 0},
		{name: "one byte reads", in: strings.Repeat("x", 3000), keep: 1500, max: 2000, kept: strings.Repeat("x", 1500), n: 2000, chunk: true},
	}
	for _, tt := range tests {
		var r io.Reader = strings.NewReader(tt.in)
		if tt.chunk {
			r = iotest.OneByteReader(r)
		}
		kept, n, err := ReadCapped(r, tt.keep, tt.max)
		if err != nil || string(kept) != tt.kept || n != tt.n {
			t.Errorf("%s: got (%q, %d, %v), want (%q, %d, nil)", tt.name, kept, n, err, tt.kept, tt.n)
		}
	}
}

func TestReadCappedNeverReadsPastMax(t *testing.T) {
	t.Parallel()
	r := strings.NewReader("0123456789")
	if _, n, err := ReadCapped(r, 2, 6); err != nil || n != 6 {
		t.Fatalf("n = %d, err = %v", n, err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "6789" {
		t.Errorf("left in the reader %q, want %q", rest, "6789")
	}
}

func TestReadCappedError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, keep := range []int{2, 100} { // error while keeping, and while discarding
		r := io.MultiReader(strings.NewReader("abcde"), iotest.ErrReader(boom))
		kept, n, err := ReadCapped(r, keep, 1000)
		if !errors.Is(err, boom) {
			t.Errorf("keep %d: err = %v, want boom", keep, err)
		}
		if n != 5 || !strings.HasPrefix("abcde", string(kept)) || len(kept) != min(keep, 5) {
			t.Errorf("keep %d: got (%q, %d), want the bytes before the error", keep, kept, n)
		}
	}
}

func BenchmarkReadCapped(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		ReadCapped(bytes.NewReader(body), 4<<10, 64<<10)
	}
}
