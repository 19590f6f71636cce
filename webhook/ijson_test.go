package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

// TestCanonicalizeIJSON: the I-JSON rules (RFC 7493) on top of the
// canonical form (issue 15, item 4). Before, 9007199254740993 was refused
// but 9007199254740992, 9007199254740994 and 100000000000000000000 went
// through, a repeated name silently kept its last value and an unpaired
// surrogate was delivered as an escape.
func TestCanonicalizeIJSON(t *testing.T) {
	t.Parallel()
	kept := map[string]string{
		`{"id":9007199254740991}`:                         `{"id":9007199254740991}`,
		`{"id":-9007199254740991}`:                        `{"id":-9007199254740991}`,
		`{"id":9007199254740991.0}`:                       `{"id":9007199254740991}`,
		`{"id":1.5,"e":1e21,"f":-1.7976931348623157e308}`: `{"id":1.5,"e":1e+21,"f":-1.7976931348623157e+308}`,
		`{"x":9007199254740993.25e-5}`:                    `{"x":90071992547.40993}`,
		`{"a":"\ud83d\ude00","b":"\u00e9"}`:               `{"a":"😀","b":"é"}`,
		`{"a":{"x":1},"b":{"x":2}}`:                       `{"a":{"x":1},"b":{"x":2}}`, // the same name in two objects
		`{"2":1,"1":2}`:                                   `{"1":2,"2":1}`,
		`{"a":"\\ud800"}`:                                 `{"a":"\\ud800"}`, // an escaped backslash, then text
	}
	for in, want := range kept {
		got, err := CanonicalizeIJSON([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("CanonicalizeIJSON(%s) = %s, %v; want %s", in, got, err, want)
		}
		if plain, err := Canonicalize([]byte(in)); err != nil || !bytes.Equal(plain, got) {
			t.Errorf("Canonicalize(%s) = %s, %v; want what CanonicalizeIJSON gives", in, plain, err)
		}
	}
	refused := []struct {
		in, path, has string
		err           error
	}{
		{`{"id":9007199254740992}`, `id`, `integer 9007199254740992 is beyond ±9007199254740991`, ErrUnsafeInteger},
		{`{"id":-9007199254740992}`, `id`, `integer -9007199254740992 is beyond`, ErrUnsafeInteger},
		{`{"id":9007199254740993}`, `id`, `integer 9007199254740993 is beyond`, ErrUnsafeInteger},
		{`{"id":9007199254740994}`, `id`, `integer 9007199254740994 is beyond`, ErrUnsafeInteger},
		{`{"id":100000000000000000000}`, `id`, `integer 100000000000000000000 is beyond`, ErrUnsafeInteger},
		{`{"ids":[1,18446744073709551615]}`, `ids[1]`, `integer 18446744073709551615`, ErrUnsafeInteger},
		// Written otherwise, but delivered as such an integer.
		{`{"id":1e20}`, `id`, `number 1e20 is an integer beyond`, ErrUnsafeInteger},
		{`{"id":9007199254740992.0}`, `id`, `number 9007199254740992.0 is an integer beyond`, ErrUnsafeInteger},
		{`{"id":9007199254740993e0}`, `id`, `number 9007199254740993e0`, ErrUnsafeInteger},
		{`{"id":1,"id":2}`, `id`, `member name "id" appears twice`, ErrDuplicateName},
		{`{"a":{"b":[{"c":1,"\u0063":2}]}}`, `a.b[0].c`, `"c" appears twice`, ErrDuplicateName},
		{`{"a":"x\ud800y"}`, `a`, `unpaired UTF-16 surrogate escape \ud800`, ErrLoneSurrogate},
		{`{"a":["\udc00\ud83d"]}`, `a[0]`, `\udc00`, ErrLoneSurrogate},
		{`{"a":"\ud83d"}`, `a`, `\ud83d`, ErrLoneSurrogate},
		{`{"a":{"\udfff":1}}`, `a`, `\udfff`, ErrLoneSurrogate},
		// What Canonicalize refuses stays refused.
		{`{"a":1e400}`, `a`, `beyond JavaScript's range`, ErrNumberOverflow},
		{`{"a":[1,}`, `a[1]`, `invalid JSON`, ErrInvalidJSON},
	}
	for _, tc := range refused {
		got, err := CanonicalizeIJSON([]byte(tc.in))
		ce, ok := errors.AsType[*CanonicalError](err)
		if !ok || !errors.Is(err, tc.err) || ce.Path != tc.path || !strings.Contains(ce.Reason, tc.has) {
			t.Errorf("CanonicalizeIJSON(%s) = %s, %v; want a *CanonicalError at %q wrapping %v, saying %q", tc.in, got, err, tc.path, tc.err, tc.has)
		}
		// The fuzz oracle reads the I-JSON rules the same way.
		if ijson := tc.err == ErrDuplicateName || tc.err == ErrLoneSurrogate || tc.err == ErrUnsafeInteger; ijson != ijsonViolation([]byte(tc.in)) {
			t.Errorf("ijsonViolation(%s) = %v, want %v", tc.in, !ijson, ijson)
		}
		checkIJSON(t, []byte(tc.in))
	}
	for in := range kept {
		if ijsonViolation([]byte(in)) {
			t.Errorf("ijsonViolation(%s) = true, want false", in)
		}
	}
}

// ijsonViolation is the test's own reading of whether valid JSON breaks an
// I-JSON rule of CanonicalizeIJSON: an unpaired surrogate escape, a name
// repeated in one object, or a number that JavaScript writes as an integer
// beyond ±(2^53 − 1) (below 1e21, from where it writes an exponent), or
// written as such an integer.
func ijsonViolation(in []byte) bool {
	if HasLoneSurrogate(in) {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	type open struct {
		object bool
		names  map[string]bool
		key    bool // the next token is a name
	}
	var stack []open
	limit := new(big.Rat).SetInt64(1<<53 - 1)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			return false // not for this oracle to judge
		}
		top := len(stack) - 1
		if top >= 0 && stack[top].object && stack[top].key {
			if d, ok := tok.(json.Delim); !ok || d != '}' {
				name := tok.(string)
				if stack[top].names[name] {
					return true
				}
				stack[top].names[name] = true
				stack[top].key = false
				continue
			}
		}
		if top >= 0 && stack[top].object {
			stack[top].key = true // after this value, a name or '}'
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, open{object: true, names: map[string]bool{}, key: true})
			case '[':
				stack = append(stack, open{})
			default:
				stack = stack[:len(stack)-1]
				if top := len(stack) - 1; top >= 0 && stack[top].object {
					stack[top].key = true
				}
			}
		case json.Number:
			lit := string(v)
			if !strings.ContainsAny(lit, ".eE") {
				r, _ := new(big.Rat).SetString(lit)
				if new(big.Rat).Abs(r).Cmp(limit) > 0 {
					return true
				}
				continue
			}
			f, err := strconv.ParseFloat(lit, 64)
			if err == nil && f == math.Trunc(f) && math.Abs(f) > 1<<53-1 && math.Abs(f) < 1e21 {
				return true
			}
		}
	}
}

// checkIJSON holds CanonicalizeIJSON to Canonicalize and to the test's own
// reading of the rules, for one input: it refuses what Canonicalize refuses,
// and what breaks an I-JSON rule with one of the I-JSON errors; everything
// else it takes, with Canonicalize's output, which it takes again.
func checkIJSON(t *testing.T, in []byte) {
	t.Helper()
	plain, plainErr := Canonicalize(in)
	got, err := CanonicalizeIJSON(in)
	switch {
	case plainErr != nil:
		if err == nil {
			t.Fatalf("CanonicalizeIJSON(%q) = %q, but Canonicalize refuses it: %v", in, got, plainErr)
		}
	case ijsonViolation(in):
		if !errors.Is(err, ErrUnsafeInteger) && !errors.Is(err, ErrDuplicateName) && !errors.Is(err, ErrLoneSurrogate) {
			t.Fatalf("CanonicalizeIJSON(%q) = %q, %v; want an I-JSON refusal", in, got, err)
		}
	default:
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("CanonicalizeIJSON(%q) = %q, %v; want %q", in, got, err, plain)
		}
		if again, err := CanonicalizeIJSON(got); err != nil || !bytes.Equal(again, got) {
			t.Fatalf("CanonicalizeIJSON(%q) = %q, which it then answers %q, %v", in, got, again, err)
		}
	}
}

func TestCanonicalizeIJSONTable(t *testing.T) {
	t.Parallel()
	for _, tc := range allCanonicalCases() {
		checkIJSON(t, []byte(tc.in))
	}
}
