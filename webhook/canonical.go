package webhook

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects Canonicalize accepts.
// It bounds the recursion of the encoder and the work a hostile payload can
// cause; no job result needs more.
const MaxDepth = 512

// maxSafeInteger is 2^53 written out: the largest magnitude below which every
// integer is an exact JavaScript number.
const maxSafeInteger = "9007199254740992"

// maxIJSONInteger is 2^53 − 1 (JavaScript's Number.MAX_SAFE_INTEGER) written
// out: the largest magnitude of an integer in I-JSON (RFC 7493 §2.2).
const maxIJSONInteger = "9007199254740991"

// Errors a *CanonicalError wraps, so callers can tell malformed input (the
// client sent something that is not JSON) from JSON that JavaScript cannot
// carry unchanged. Test with errors.Is.
var (
	// ErrInvalidJSON marks input that JSON.parse would reject: bad syntax,
	// trailing data, or bytes that are not UTF-8.
	ErrInvalidJSON = errors.New("invalid JSON")
	// ErrUnsafeInteger marks an integer literal beyond 2^53 that JavaScript
	// would silently round (9007199254740993 becomes 9007199254740992).
	ErrUnsafeInteger = errors.New("integer beyond 2^53")
	// ErrNumberOverflow marks a number beyond the float64 range, which
	// JSON.stringify would turn into null.
	ErrNumberOverflow = errors.New("number out of range")
	// ErrTooDeep marks nesting deeper than MaxDepth.
	ErrTooDeep = errors.New("nesting too deep")
	// ErrDuplicateName marks an object that names a member twice, which
	// CanonicalizeIJSON refuses (JSON.parse keeps the last value).
	ErrDuplicateName = errors.New("duplicate member name")
	// ErrLoneSurrogate marks a \u escape of a UTF-16 surrogate that is not
	// half of a pair, which CanonicalizeIJSON refuses (JavaScript keeps it).
	ErrLoneSurrogate = errors.New("unpaired surrogate")
)

// CanonicalError says why a JSON value cannot be delivered byte-exactly.
// Path is the dotted/indexed path inside the value ("" for the root,
// "items[3].id", "a.b"), Reason the explanation. Keys that would make a dotted
// path ambiguous (empty, or holding '.', '[', ']', quotes, backslashes, spaces
// or control characters) appear as ["key"] in JSON string syntax.
type CanonicalError struct {
	Path   string
	Reason string

	err error // one of the Err* sentinels above, for errors.Is
}

// Error returns "path: reason", or only the reason for the root, so the text
// can be shown to the publisher as it is.
func (e *CanonicalError) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// Unwrap returns the sentinel that classifies the error (ErrInvalidJSON,
// ErrUnsafeInteger, ErrNumberOverflow, ErrTooDeep, and from CanonicalizeIJSON
// ErrDuplicateName and ErrLoneSurrogate), so callers can branch with
// errors.Is without parsing Reason.
func (e *CanonicalError) Unwrap() error { return e.err }

// Canonicalize returns exactly what JavaScript's JSON.stringify(JSON.parse(raw))
// returns (as UTF-8), or a *CanonicalError. Deliveries carry this form so that
// receivers which re-serialise the parsed body verify the same bytes nanohook
// signed.
//
// Rather than let JavaScript alter data, it refuses: an integer beyond 2^53
// that JavaScript would not print back unchanged (ErrUnsafeInteger) — written
// plainly, it must come back digit for digit; written with an exponent, as
// the same integer (1e21 is kept, 9007199254740993e0 refused); a
// number beyond the float64 range, which would become null
// (ErrNumberOverflow); nesting deeper than MaxDepth (ErrTooDeep); and, like
// JSON.parse, anything that is not JSON, including bytes that are not UTF-8
// (ErrInvalidJSON). Every output is accepted again and is its own canonical
// form.
func Canonicalize(raw []byte) ([]byte, error) {
	out, err := appendCanonical(make([]byte, 0, len(raw)), raw, false)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CanonicalizeIJSON is Canonicalize for I-JSON (RFC 7493), the JSON that
// every parser reads the same way: besides what Canonicalize refuses, it
// refuses an integer beyond ±(2^53 − 1) (ErrUnsafeInteger), a member name
// given twice in one object (ErrDuplicateName) and an unpaired UTF-16
// surrogate escape (ErrLoneSurrogate). Its outputs are the same bytes
// Canonicalize gives.
//
// The integer bound holds for numbers as they are delivered: a number
// written with a fraction or an exponent is refused when its canonical form
// is such an integer (1e20 is written 100000000000000000000), so that every
// output is accepted again. Other numbers, 1.5 or 1e21 (written 1e+21), are
// kept as Canonicalize keeps them.
func CanonicalizeIJSON(raw []byte) ([]byte, error) {
	out, err := appendCanonical(make([]byte, 0, len(raw)), raw, true)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendCanonical appends the canonical form of raw to dst. It is the
// allocation-free form of Canonicalize for callers that reuse a buffer; on
// error it returns dst unchanged in length.
func AppendCanonical(dst, raw []byte) ([]byte, error) {
	return appendCanonical(dst, raw, false)
}

// appendCanonical is AppendCanonical, with the rules of I-JSON when ijson.
func appendCanonical(dst, raw []byte, ijson bool) ([]byte, error) {
	c := canonicalizerPool.Get().(*canonicalizer)
	c.in, c.pos, c.out, c.ijson = raw, 0, dst, ijson
	err := c.document()
	out := c.out
	c.release()
	if err != nil {
		return dst, err
	}
	return out, nil
}

// canonicalizer is the state of one single-pass parse-and-emit. Values are
// written to out as they are read; an object's members are remembered as
// spans of out so the object can be rewritten in JavaScript's property order
// when (rarely) the input order differs from it.
type canonicalizer struct {
	in    []byte
	pos   int
	out   []byte
	ijson bool // refuse what I-JSON (RFC 7493) does not allow

	depth   int
	members []member // members of every open object, innermost last
	frames  []frame  // open containers, for error paths
	scratch []byte   // copy of an object being reordered
}

// member is one property of an open object, as spans of canonicalizer.out.
type member struct {
	keyStart, keyEnd int // the quoted key
	valStart, valEnd int // the value of the last occurrence of the key
	index            uint32
	isIndex          bool // the key is an array index: JavaScript lists it first
}

// frame is one open container on the way to the current value.
type frame struct {
	object           bool
	index            int // array: index of the current element
	keyStart, keyEnd int // object: current key in out, keyEnd 0 when none yet
}

var canonicalizerPool = sync.Pool{New: func() any {
	return &canonicalizer{
		members: make([]member, 0, 32),
		frames:  make([]frame, 0, 16),
	}
}}

// release returns c to the pool without keeping the caller's buffers alive,
// and drops scratch space a rare huge document left behind.
func (c *canonicalizer) release() {
	c.in, c.out = nil, nil
	c.depth = 0
	c.members = c.members[:0]
	c.frames = c.frames[:0]
	if cap(c.members) > 1<<12 {
		c.members = make([]member, 0, 32)
	}
	if cap(c.scratch) > 1<<16 {
		c.scratch = nil
	}
	canonicalizerPool.Put(c)
}

// isWhitespace reports the four bytes RFC 8259 (and JSON.parse) skip.
func isWhitespace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r'
}

func (c *canonicalizer) skipWhitespace() {
	for c.pos < len(c.in) && isWhitespace(c.in[c.pos]) {
		c.pos++
	}
}

// document reads one value surrounded by optional whitespace.
func (c *canonicalizer) document() error {
	if err := c.value(); err != nil {
		return err
	}
	c.skipWhitespace()
	if c.pos < len(c.in) {
		return c.syntaxError("unexpected data after the top-level value")
	}
	return nil
}

func (c *canonicalizer) value() error {
	c.skipWhitespace()
	if c.pos >= len(c.in) {
		return c.syntaxError("")
	}
	switch b := c.in[c.pos]; b {
	case '{':
		return c.object()
	case '[':
		return c.array()
	case '"':
		return c.string()
	case 't':
		return c.literal("true")
	case 'f':
		return c.literal("false")
	case 'n':
		return c.literal("null")
	default:
		if b == '-' || (b >= '0' && b <= '9') {
			return c.number()
		}
		return c.syntaxError("")
	}
}

func (c *canonicalizer) literal(word string) error {
	if !bytes.HasPrefix(c.in[c.pos:], []byte(word)) {
		// Point at the first byte that differs, like JSON.parse does.
		for i := 0; i < len(word) && c.pos < len(c.in) && c.in[c.pos] == word[i]; i++ {
			c.pos++
		}
		return c.syntaxError("")
	}
	c.pos += len(word)
	c.out = append(c.out, word...)
	return nil
}

func (c *canonicalizer) enter() error {
	c.depth++
	if c.depth > MaxDepth {
		return c.fail(ErrTooDeep, "nesting is deeper than "+strconv.Itoa(MaxDepth)+" levels")
	}
	return nil
}

func (c *canonicalizer) leave() {
	c.depth--
	c.frames = c.frames[:len(c.frames)-1]
}

func (c *canonicalizer) array() error {
	if err := c.enter(); err != nil {
		return err
	}
	c.frames = append(c.frames, frame{})
	c.pos++ // [
	c.out = append(c.out, '[')
	c.skipWhitespace()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		c.out = append(c.out, ']')
		c.leave()
		return nil
	}
	for i := 0; ; i++ {
		if i > 0 {
			c.out = append(c.out, ',')
		}
		c.frames[len(c.frames)-1].index = i
		if err := c.value(); err != nil {
			return err
		}
		c.skipWhitespace()
		if c.pos >= len(c.in) {
			return c.syntaxError("")
		}
		switch c.in[c.pos] {
		case ',':
			c.pos++
		case ']':
			c.pos++
			c.out = append(c.out, ']')
			c.leave()
			return nil
		default:
			return c.syntaxError("expected ',' or ']'")
		}
	}
}

// dedupMapThreshold is the member count above which duplicate keys are found
// with a map instead of a linear scan of the keys seen so far.
const dedupMapThreshold = 32

func (c *canonicalizer) object() error {
	if err := c.enter(); err != nil {
		return err
	}
	c.frames = append(c.frames, frame{object: true})
	fr := len(c.frames) - 1
	c.pos++ // {
	start := len(c.out)
	c.out = append(c.out, '{')
	base := len(c.members)
	c.skipWhitespace()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, '}')
		c.leave()
		return nil
	}

	var (
		reorder     bool  // input order is not JavaScript's order
		lastIndex   int64 = -1
		seenNamed   bool
		byKey       map[string]int // member position by key, for big objects
		memberCount int
	)
	for {
		c.frames[fr].keyEnd = 0
		c.skipWhitespace()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return c.syntaxError("expected a double-quoted property name")
		}
		if memberCount > 0 {
			c.out = append(c.out, ',')
		}
		keyStart := len(c.out)
		if err := c.string(); err != nil {
			return err
		}
		keyEnd := len(c.out)
		c.skipWhitespace()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return c.syntaxError("expected ':' after a property name")
		}
		c.pos++
		c.out = append(c.out, ':')
		c.frames[fr].keyStart, c.frames[fr].keyEnd = keyStart, keyEnd
		valStart := len(c.out)
		if err := c.value(); err != nil {
			return err
		}
		m := member{keyStart: keyStart, keyEnd: keyEnd, valStart: valStart, valEnd: len(c.out)}
		m.index, m.isIndex = arrayIndex(c.out[keyStart+1 : keyEnd-1])

		// JSON.parse keeps a repeated key where it first appeared and gives
		// it the last value.
		dup := -1
		key := c.out[keyStart:keyEnd]
		if byKey != nil {
			if j, ok := byKey[string(key)]; ok {
				dup = j
			}
		} else {
			for j := base; j < len(c.members); j++ {
				o := c.members[j]
				if o.keyEnd-o.keyStart == len(key) && bytes.Equal(c.out[o.keyStart:o.keyEnd], key) {
					dup = j
					break
				}
			}
		}
		if dup >= 0 && c.ijson {
			return c.fail(ErrDuplicateName, "member name "+string(key)+" appears twice in one object; I-JSON (RFC 7493) requires unique names")
		}
		if dup >= 0 {
			c.members[dup].valStart, c.members[dup].valEnd = m.valStart, m.valEnd
			reorder = true
		} else {
			if m.isIndex {
				if seenNamed || int64(m.index) < lastIndex {
					reorder = true
				}
				lastIndex = int64(m.index)
			} else {
				seenNamed = true
			}
			c.members = append(c.members, m)
			if byKey != nil {
				byKey[string(key)] = len(c.members) - 1
			} else if len(c.members)-base > dedupMapThreshold {
				byKey = make(map[string]int, 2*dedupMapThreshold)
				for j := base; j < len(c.members); j++ {
					byKey[string(c.out[c.members[j].keyStart:c.members[j].keyEnd])] = j
				}
			}
		}
		memberCount++

		c.skipWhitespace()
		if c.pos >= len(c.in) {
			return c.syntaxError("")
		}
		switch c.in[c.pos] {
		case ',':
			c.pos++
		case '}':
			c.pos++
			c.out = append(c.out, '}')
			if reorder {
				c.reorder(start, base)
			}
			c.members = c.members[:base]
			c.leave()
			return nil
		default:
			return c.syntaxError("expected ',' or '}'")
		}
	}
}

// reorder rewrites the object that starts at out[start] in JavaScript's
// property order: array-index keys ascending, then the other keys in the order
// they first appeared, each with the value of its last occurrence. The result
// is never longer than what it replaces.
func (c *canonicalizer) reorder(start, base int) {
	ms := c.members[base:]
	slices.SortStableFunc(ms, func(a, b member) int {
		switch {
		case a.isIndex && b.isIndex:
			if a.index < b.index {
				return -1
			}
			return 1 // keys are unique, indexes never equal
		case a.isIndex:
			return -1
		case b.isIndex:
			return 1
		}
		return 0
	})
	c.scratch = append(c.scratch[:0], c.out[start:]...)
	c.out = c.out[:start+1] // keep '{'
	for i, m := range ms {
		if i > 0 {
			c.out = append(c.out, ',')
		}
		c.out = append(c.out, c.scratch[m.keyStart-start:m.keyEnd-start]...)
		c.out = append(c.out, ':')
		c.out = append(c.out, c.scratch[m.valStart-start:m.valEnd-start]...)
	}
	c.out = append(c.out, '}')
}

// arrayIndex reports whether key (the decoded key, which for digits is the
// same bytes as its canonical form) is an ECMAScript array index: the
// canonical decimal form of an integer from 0 to 2^32-2. Objects list such
// keys before all others, in numeric order.
func arrayIndex(key []byte) (uint32, bool) {
	if len(key) == 0 || len(key) > 10 || (key[0] == '0' && len(key) > 1) {
		return 0, false
	}
	var n uint64
	for _, b := range key {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + uint64(b-'0')
	}
	if n > 1<<32-2 {
		return 0, false
	}
	return uint32(n), true
}

// fail builds the error for the value being read now.
func (c *canonicalizer) fail(kind error, reason string) error {
	return &CanonicalError{Path: c.path(), Reason: reason, err: kind}
}

// syntaxError reports malformed input at c.pos; an empty what describes the
// byte found there.
func (c *canonicalizer) syntaxError(what string) error {
	var reason string
	switch {
	case c.pos >= len(c.in):
		reason = "invalid JSON: unexpected end of input"
	case what == "":
		reason = "invalid JSON: unexpected character " + quoteByte(c.in[c.pos]) + " at offset " + strconv.Itoa(c.pos)
	default:
		reason = "invalid JSON: " + what + " at offset " + strconv.Itoa(c.pos)
	}
	return c.fail(ErrInvalidJSON, reason)
}

func quoteByte(b byte) string {
	if b < utf8.RuneSelf {
		return strconv.QuoteRune(rune(b))
	}
	return "byte 0x" + strconv.FormatUint(uint64(b), 16)
}

// path renders the open containers as "items[3].id".
func (c *canonicalizer) path() string {
	var p []byte
	for _, f := range c.frames {
		if !f.object {
			p = append(p, '[')
			p = strconv.AppendInt(p, int64(f.index), 10)
			p = append(p, ']')
			continue
		}
		if f.keyEnd == 0 {
			break // the error is in a key: the path is the object
		}
		quoted := c.out[f.keyStart:f.keyEnd]
		if name := quoted[1 : len(quoted)-1]; plainPathKey(name) {
			if len(p) > 0 {
				p = append(p, '.')
			}
			p = append(p, name...)
		} else {
			p = append(p, '[')
			p = append(p, quoted...)
			p = append(p, ']')
		}
	}
	return string(p)
}

// plainPathKey reports whether name can follow a dot in a path without
// making it ambiguous.
func plainPathKey(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, b := range name {
		switch {
		case b <= ' ', b == '.', b == '[', b == ']', b == '"', b == '\\', b == 0x7f:
			return false
		}
	}
	return true
}
