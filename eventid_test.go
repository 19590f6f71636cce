package nanohook

import (
	"strings"
	"testing"
	"time"
)

// Event ids made later sort after those made earlier (to the millisecond),
// are "evt_" and 26 characters of the alphabet and differ even
// within one millisecond.
func TestNewEventIDSortsByTime(t *testing.T) {
	base := time.Date(2026, 12, 8, 1, 2, 3, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 2000 {
		// Several ids a millisecond, and steps across every digit of the
		// timestamp (1 ms up to about 9 years).
		now := base.Add(time.Duration(i/4) * time.Millisecond)
		if i%100 == 99 {
			base = base.Add(time.Duration(1<<(i/100*2)) * time.Millisecond)
		}
		id := newEventID(now)
		if len(id) != 30 || !strings.HasPrefix(id, "evt_") {
			t.Fatalf("id %q: want evt_ and 26 characters", id)
		}
		for _, c := range id[4:] {
			if !strings.ContainsRune(idAlphabet, c) {
				t.Fatalf("id %q has %q, not in the alphabet", id, c)
			}
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
		if prev != "" && id[:14] < prev[:14] {
			t.Fatalf("id %q (at %v) sorts before the earlier %q", id, now, prev)
		}
		prev = id
	}
}

func TestSortedAlphabetIsSorted(t *testing.T) {
	if len(idAlphabet) != 32 {
		t.Fatalf("%d characters, want 32", len(idAlphabet))
	}
	for i := 1; i < len(idAlphabet); i++ {
		if idAlphabet[i-1] >= idAlphabet[i] {
			t.Fatalf("%q before %q", idAlphabet[i-1], idAlphabet[i])
		}
	}
}

// The timestamp part is the Unix milliseconds in base32, most significant
// digit first: the epoch is ten zeros, and another time's digits are
// worked out here by repeated division, not by the encoder's shifts.
func TestNewEventIDTimestamp(t *testing.T) {
	if got := newEventID(time.UnixMilli(0))[4:14]; got != "0000000000" {
		t.Fatalf("epoch timestamp %q, want 0000000000", got)
	}
	at := time.Date(2026, 12, 8, 1, 2, 3, 4e6, time.UTC)
	ms := at.UnixMilli()
	want := make([]byte, 10)
	for i := 9; i >= 0; i-- {
		want[i] = idAlphabet[ms%32]
		ms /= 32
	}
	if got := newEventID(at)[4:14]; got != string(want) {
		t.Fatalf("timestamp of %v: %q, want %q", at, got, want)
	}
	// The random part differs between two ids of one millisecond.
	if a, b := newEventID(at)[14:], newEventID(at)[14:]; a == b {
		t.Fatalf("two ids of one millisecond share their random part %q", a)
	}
}
