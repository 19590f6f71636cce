package webhook

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// plainByte marks the ASCII bytes a JSON string can hold and JSON.stringify
// writes as they are: everything from space to DEL except '"' and '\'.
var plainByte = func() (t [256]bool) {
	for b := 0x20; b < 0x80; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

const lowerHex = "0123456789abcdef"

// jsEscapes holds JSON.stringify's escape for each code unit below 0x20 and for
// '"' and '\'; an empty entry means the character is written as it is.
var jsEscapes = func() (t [0x60]string) {
	for b := 0; b < 0x20; b++ {
		t[b] = `\u00` + string(lowerHex[b>>4]) + string(lowerHex[b&0xf])
	}
	t['\b'], t['\t'], t['\n'], t['\f'], t['\r'] = `\b`, `\t`, `\n`, `\f`, `\r`
	t['"'], t['\\'] = `\"`, `\\`
	return t
}()

// string reads the JSON string at c.pos and writes it as JSON.stringify
// would: escapes decoded and re-escaped, surrogate pairs joined, lone
// surrogates written as lowercase \u escapes.
func (c *canonicalizer) string() error {
	// Work on locals: c lives on the heap, and the loop below is the
	// hottest code of the package.
	in, pos := c.in, c.pos+1
	out := append(c.out, '"')
	for {
		run := pos
		for pos < len(in) {
			if pos+8 <= len(in) {
				if m := specialBytes(binary.LittleEndian.Uint64(in[pos:])); m == 0 {
					pos += 8
					continue
				} else {
					pos += bits.TrailingZeros64(m) >> 3
				}
			}
			b := in[pos]
			if plainByte[b] {
				pos++
				continue
			}
			if b < utf8.RuneSelf {
				break
			}
			r, size := utf8.DecodeRune(in[pos:])
			if r == utf8.RuneError && size <= 1 {
				c.pos, c.out = pos, append(out, in[run:pos]...)
				return c.fail(ErrInvalidJSON, "invalid UTF-8 at offset "+strconv.Itoa(pos))
			}
			pos += size
		}
		out = append(out, in[run:pos]...)
		c.pos, c.out = pos, out
		if pos >= len(in) {
			return c.syntaxError("")
		}
		switch b := in[pos]; {
		case b == '"':
			c.pos++
			c.out = append(out, '"')
			return nil
		case b == '\\':
			if err := c.escape(); err != nil {
				return err
			}
			pos, out = c.pos, c.out
		default: // a raw control character
			return c.syntaxError("control character in a string")
		}
	}
}

// specialBytes flags, in the high bit of each byte, the bytes of w (eight
// string bytes, first in the low byte) that are not plain ASCII: '"', '\',
// control characters and bytes of multi-byte UTF-8 sequences. Bits above the
// lowest one may be false positives; the lowest set bit is always exact.
func specialBytes(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	control := (w - 0x20*ones) &^ w
	quote := w ^ '"'*ones
	backslash := w ^ '\\'*ones
	return (control | (quote-ones)&^quote | (backslash-ones)&^backslash | w) & highs
}

// escape reads the escape sequence at c.pos (at the backslash).
func (c *canonicalizer) escape() error {
	in := c.in
	c.pos++
	if c.pos >= len(in) {
		return c.syntaxError("")
	}
	switch e := in[c.pos]; e {
	case '"', '\\':
		c.out = append(c.out, '\\', e)
	case '/':
		c.out = append(c.out, '/')
	case 'b', 'f', 'n', 'r', 't':
		c.out = append(c.out, '\\', e)
	case 'u':
		u, ok := hex4(in[c.pos+1:])
		if !ok {
			return c.syntaxError("bad \\u escape")
		}
		c.pos += 4
		if u >= 0xd800 && u < 0xdc00 && c.pos+6 < len(in) && in[c.pos+1] == '\\' && in[c.pos+2] == 'u' {
			if lo, ok := hex4(in[c.pos+3:]); ok && lo >= 0xdc00 && lo < 0xe000 {
				c.pos += 6
				c.out = utf8.AppendRune(c.out, 0x10000+(rune(u)-0xd800)<<10+rune(lo)-0xdc00)
				break
			}
		}
		if c.ijson && u >= 0xd800 && u < 0xe000 {
			c.pos -= 5 // at the backslash, for the path and the offset
			return c.fail(ErrLoneSurrogate, "a string holds the unpaired UTF-16 surrogate escape \\u"+string(in[c.pos+2:c.pos+6])+
				", which I-JSON (RFC 7493) does not allow")
		}
		c.out = appendCodeUnit(c.out, u)
	default:
		return c.syntaxError("bad escape")
	}
	c.pos++
	return nil
}

// appendCodeUnit writes one UTF-16 code unit as JSON.stringify does; a
// surrogate here is a lone one and stays an escape.
func appendCodeUnit(dst []byte, u uint16) []byte {
	switch {
	case int(u) < len(jsEscapes) && jsEscapes[u] != "":
		return append(dst, jsEscapes[u]...)
	case u >= 0xd800 && u < 0xe000:
		return append(dst, '\\', 'u', lowerHex[u>>12], lowerHex[u>>8&0xf], lowerHex[u>>4&0xf], lowerHex[u&0xf])
	default:
		return utf8.AppendRune(dst, rune(u))
	}
}

// HasLoneSurrogate reports whether the valid JSON text raw holds a \u
// escape of a UTF-16 surrogate that is not one half of a high-low pair.
// JavaScript keeps such a string as it is (and JSON.stringify writes the
// escape back); Go's encoding/json turns it into U+FFFD without a word, so
// a caller decoding into Go strings can refuse it instead of storing
// something other than what was sent. A backslash only occurs inside
// strings, and escapes in valid JSON are well formed.
func HasLoneSurrogate(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // the escaped character; skipping it also skips an escaped backslash
		if i >= len(raw) || raw[i] != 'u' {
			continue
		}
		u, ok := hex4(raw[i+1:])
		if !ok {
			continue
		}
		i += 4 // the last hex digit
		switch {
		case u >= 0xdc00 && u < 0xe000:
			return true // a low half with no high half before it
		case u >= 0xd800 && u < 0xdc00:
			if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo, ok := hex4(raw[i+3:]); ok && lo >= 0xdc00 && lo < 0xe000 {
					i += 6
					continue
				}
			}
			return true // a high half not followed by a low half
		}
	}
	return false
}

// hex4 decodes the four hex digits that start b.
func hex4(b []byte) (uint16, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var u uint16
	for _, h := range b[:4] {
		switch {
		case h >= '0' && h <= '9':
			h -= '0'
		case h >= 'a' && h <= 'f':
			h -= 'a' - 10
		case h >= 'A' && h <= 'F':
			h -= 'A' - 10
		default:
			return 0, false
		}
		u = u<<4 | uint16(h)
	}
	return u, true
}

// appendJSString appends s as JSON.stringify writes a string. It refuses
// invalid UTF-8, which has no JavaScript string it could stand for without
// being altered.
func appendJSString(dst []byte, s string) ([]byte, bool) {
	dst = append(dst, '"')
	run := 0
	for i := 0; i < len(s); {
		b := s[i]
		if plainByte[b] {
			i++
			continue
		}
		if b >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size <= 1 {
				return dst, false
			}
			i += size
			continue
		}
		dst = append(dst, s[run:i]...)
		dst = append(dst, jsEscapes[b]...)
		i++
		run = i
	}
	dst = append(dst, s[run:]...)
	return append(dst, '"'), true
}
