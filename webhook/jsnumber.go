package webhook

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// number reads the JSON number at c.pos and writes it as JavaScript's
// Number.prototype.toString would, refusing the values JavaScript cannot hold
// and, in I-JSON mode, integers beyond ±(2^53 − 1) as they are written out.
func (c *canonicalizer) number() error {
	start, mark := c.pos, len(c.out)
	err := c.jsNumber()
	if !c.ijson || err != nil && !errors.Is(err, ErrUnsafeInteger) {
		return err
	}
	if err == nil && !beyondIJSONInteger(c.out[mark:]) {
		return nil
	}
	c.out = c.out[:mark]
	lit := string(c.in[start:c.pos])
	what := "number " + lit + " is an integer"
	if !strings.ContainsAny(lit, ".eE") {
		what = "integer " + lit + " is"
	}
	return c.fail(ErrUnsafeInteger, what+" beyond ±"+maxIJSONInteger+" (2^53-1), the integer range of I-JSON (RFC 7493); send such values as strings")
}

// beyondIJSONInteger reports whether printed, a number as JavaScript writes
// it, is an integer in plain digits beyond ±(2^53 − 1).
func beyondIJSONInteger(printed []byte) bool {
	digits := bytes.TrimPrefix(printed, []byte("-"))
	if len(digits) < len(maxIJSONInteger) || bytes.ContainsAny(digits, ".e") {
		return false
	}
	return len(digits) > len(maxIJSONInteger) || string(digits) > maxIJSONInteger
}

// jsNumber is number without the I-JSON bound.
func (c *canonicalizer) jsNumber() error {
	in := c.in
	start := c.pos
	if in[c.pos] == '-' {
		c.pos++
		if c.pos >= len(in) || in[c.pos] < '0' || in[c.pos] > '9' {
			return c.syntaxError("no digit after a minus sign")
		}
	}
	intStart := c.pos
	if in[c.pos] == '0' {
		c.pos++
	} else {
		for c.pos < len(in) && in[c.pos] >= '0' && in[c.pos] <= '9' {
			c.pos++
		}
	}
	intDigits := in[intStart:c.pos]

	hasFraction, fractionIsZero := false, true
	if c.pos < len(in) && in[c.pos] == '.' {
		c.pos++
		fracStart := c.pos
		for c.pos < len(in) && in[c.pos] >= '0' && in[c.pos] <= '9' {
			if in[c.pos] != '0' {
				fractionIsZero = false
			}
			c.pos++
		}
		if c.pos == fracStart {
			return c.syntaxError("no digit after a decimal point")
		}
		hasFraction = true
	}
	hasExponent := false
	if c.pos < len(in) && (in[c.pos] == 'e' || in[c.pos] == 'E') {
		c.pos++
		if c.pos < len(in) && (in[c.pos] == '+' || in[c.pos] == '-') {
			c.pos++
		}
		expStart := c.pos
		for c.pos < len(in) && in[c.pos] >= '0' && in[c.pos] <= '9' {
			c.pos++
		}
		if c.pos == expStart {
			return c.syntaxError("no digit in an exponent")
		}
		hasExponent = true
	}
	lit := in[start:c.pos]

	if !hasExponent {
		switch {
		case beyondSafeInteger(intDigits) && (!hasFraction || fractionIsZero):
			return c.bigInteger(lit, in[start:intStart+len(intDigits)], hasFraction)
		case !hasFraction:
			// An exact integer: JavaScript prints its digits, and -0 as 0.
			if len(intDigits) == 1 && intDigits[0] == '0' {
				c.out = append(c.out, '0')
			} else {
				c.out = append(c.out, lit...)
			}
			return nil
		}
	}

	if !hasExponent {
		if out, ok := appendShortDecimal(c.out, lit[0] == '-', intDigits, in[intStart+len(intDigits)+1:c.pos]); ok {
			c.out = out
			return nil
		}
	}

	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil { // only ErrRange can happen after the scan above
		if math.IsInf(f, 0) {
			return c.fail(ErrNumberOverflow, "number "+string(lit)+" is beyond JavaScript's range (JSON.stringify would turn it into null)")
		}
	}
	mark := len(c.out)
	c.out = appendJSNumber(c.out, f)
	if hasExponent && math.Abs(f) >= 1<<53 && !sameInteger(lit, c.out[mark:]) {
		c.out = c.out[:mark]
		return c.fail(ErrUnsafeInteger, "number "+string(lit)+" is an integer beyond 2^53 and cannot be held exactly by JavaScript")
	}
	return nil
}

// sameInteger reports whether JavaScript's printed form keeps the value of a
// literal written with an exponent. Only integers are checked: 1e21 stays
// 10^21 exactly and is kept, 9007199254740993e0 would become
// 9007199254740992 and is refused. A literal with a true fraction is a real
// number that every double only approximates (0.1 too), as in JavaScript. It
// runs only for magnitudes from 2^53 on, so math/big stays off the hot path.
func sameInteger(lit, printed []byte) bool {
	exact, ok := new(big.Rat).SetString(string(lit))
	if !ok || !exact.IsInt() {
		return true
	}
	got, ok := new(big.Rat).SetString(string(printed))
	return ok && exact.Cmp(got) == 0
}

// bigInteger writes a literal whose value is an integer beyond 2^53 (intLit is
// its sign and integer digits), or refuses it. Most such integers are not
// doubles and JavaScript would round them; the ones it prints back digit for
// digit (100000000000000000000, which is what 1e20 becomes) are kept, so that
// every canonical output is itself accepted.
func (c *canonicalizer) bigInteger(lit, intLit []byte, hasFraction bool) error {
	f, _ := strconv.ParseFloat(string(intLit), 64)
	if !math.IsInf(f, 0) {
		mark := len(c.out)
		c.out = appendJSNumber(c.out, f)
		if bytes.Equal(c.out[mark:], intLit) {
			return nil
		}
		c.out = c.out[:mark]
	}
	if hasFraction {
		return c.fail(ErrUnsafeInteger, "number "+string(lit)+" is an integer beyond 2^53 and cannot be held exactly by JavaScript")
	}
	return c.fail(ErrUnsafeInteger, "integer "+string(lit)+" is beyond 2^53 and cannot be held exactly by JavaScript")
}

// appendShortDecimal writes a literal with a fraction and no exponent without
// a float round trip when that is provably what JavaScript prints: with at
// most 15 significant digits (DBL_DIG) a decimal is the only one of its length
// or shorter that maps to its double, so its own digits are the shortest
// round-trip digits; JavaScript then prints them in plain decimal when the
// value is at least 1e-6. The result is the literal without trailing fraction
// zeros (and without the point when nothing is left after it), "0" for zero.
func appendShortDecimal(dst []byte, negative bool, intDigits, frac []byte) ([]byte, bool) {
	frac = bytes.TrimRight(frac, "0")
	significant := len(intDigits) + len(frac)
	if len(intDigits) == 1 && intDigits[0] == '0' {
		if len(frac) == 0 {
			return append(dst, '0'), true // 0.0 and -0.0
		}
		leadingZeros := len(frac) - len(bytes.TrimLeft(frac, "0"))
		if leadingZeros > 5 { // below 1e-6: exponent form
			return dst, false
		}
		significant = len(frac) - leadingZeros
	}
	if significant > 15 {
		return dst, false
	}
	if negative {
		dst = append(dst, '-')
	}
	dst = append(dst, intDigits...)
	if len(frac) > 0 {
		dst = append(dst, '.')
		dst = append(dst, frac...)
	}
	return dst, true
}

// beyondSafeInteger reports whether the decimal digits (no sign, no leading
// zeros) stand for an integer above 2^53.
func beyondSafeInteger(digits []byte) bool {
	switch {
	case len(digits) != len(maxSafeInteger):
		return len(digits) > len(maxSafeInteger)
	default:
		return string(digits) > maxSafeInteger
	}
}

// appendJSNumber appends f as JavaScript's Number.prototype.toString writes it
// (ECMA-262 Number::toString with radix 10): the shortest digits that round
// trip, in plain decimal when the decimal exponent n (value = 0.d1d2… × 10^n)
// is in (-6, 21], otherwise in exponent form such as 1e+21 or 1.5e-7. Both 0
// and -0 are "0". f must be finite.
func appendJSNumber(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0')
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // "-d.ddde±xx"
	if e[0] == '-' {
		dst = append(dst, '-')
		e = e[1:]
	}
	var digits [20]byte
	k := 0
	i := 0
	for ; e[i] != 'e'; i++ {
		if e[i] != '.' {
			digits[k] = e[i]
			k++
		}
	}
	exp, _ := strconv.Atoi(string(e[i+1:]))
	n := exp + 1
	d := digits[:k]
	switch {
	case k <= n && n <= 21:
		dst = append(dst, d...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, d[:n]...)
		dst = append(dst, '.')
		dst = append(dst, d[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, d...)
	default:
		dst = append(dst, d[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, d[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}
