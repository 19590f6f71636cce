package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonGen writes random JSON text aimed at the corners of
// JSON.stringify(JSON.parse(x)): array-index-like keys, duplicates,
// __proto__, every kind of escape, lone surrogates, and numbers in many
// spellings, with random insignificant whitespace.
type jsonGen struct {
	r        *rand.Rand
	b        []byte
	maxDepth int
}

func newJSONGen(seed uint64) *jsonGen {
	return &jsonGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// document returns one random JSON text.
func (g *jsonGen) document() []byte {
	g.b = g.b[:0]
	g.maxDepth = g.r.IntN(9)
	g.ws()
	if g.r.IntN(250) == 0 {
		g.deep(MaxDepth - 4 + g.r.IntN(10)) // around the depth limit
	} else {
		g.value(0)
	}
	g.ws()
	return bytes.Clone(g.b)
}

func (g *jsonGen) ws() {
	if g.r.IntN(4) != 0 {
		return
	}
	for n := 1 + g.r.IntN(3); n > 0; n-- {
		g.b = append(g.b, " \t\n\r"[g.r.IntN(4)])
	}
}

func (g *jsonGen) deep(n int) {
	var closers []byte
	for range n {
		if g.r.IntN(2) == 0 {
			g.b = append(g.b, '[')
			closers = append(closers, ']')
		} else {
			g.b = append(g.b, `{"d":`...)
			closers = append(closers, '}')
		}
	}
	g.number()
	for i := len(closers) - 1; i >= 0; i-- {
		g.b = append(g.b, closers[i])
	}
}

func (g *jsonGen) value(depth int) {
	n := g.r.IntN(100)
	if depth >= g.maxDepth && n < 45 {
		n += 45 // only scalars at the bottom
	}
	switch {
	case n < 25:
		g.object(depth)
	case n < 45:
		g.array(depth)
	case n < 65:
		g.string()
	case n < 92:
		g.number()
	default:
		g.b = append(g.b, [...]string{"true", "false", "null"}[g.r.IntN(3)]...)
	}
}

// keyPool makes collisions (duplicates, index keys out of order) frequent.
var keyPool = []string{
	`0`, `1`, `2`, `10`, `007`, `00`, `-1`, `4294967294`, `4294967295`, `4294967296`,
	`1.5`, `1e3`, `__proto__`, `a`, `b`, `\u0061`, `\u0031`, ``, `id`, `constructor`,
	`toString`, `length`, `9007199254740993`,
}

func (g *jsonGen) object(depth int) {
	g.b = append(g.b, '{')
	g.ws()
	for i, n := 0, g.r.IntN(7-min(depth, 4)); i < n; i++ {
		if i > 0 {
			g.b = append(g.b, ',')
			g.ws()
		}
		if g.r.IntN(3) != 0 {
			g.b = append(g.b, '"')
			g.b = append(g.b, keyPool[g.r.IntN(len(keyPool))]...)
			g.b = append(g.b, '"')
		} else {
			g.string()
		}
		g.ws()
		g.b = append(g.b, ':')
		g.ws()
		g.value(depth + 1)
		g.ws()
	}
	g.b = append(g.b, '}')
}

func (g *jsonGen) array(depth int) {
	g.b = append(g.b, '[')
	g.ws()
	for i, n := 0, g.r.IntN(7-min(depth, 4)); i < n; i++ {
		if i > 0 {
			g.b = append(g.b, ',')
			g.ws()
		}
		g.value(depth + 1)
		g.ws()
	}
	g.b = append(g.b, ']')
}

func (g *jsonGen) hex4(u int) {
	h := fmt.Sprintf("%04x", u)
	if g.r.IntN(2) == 0 {
		h = strings.ToUpper(h)
	}
	g.b = append(g.b, `\u`...)
	g.b = append(g.b, h...)
}

var literalPieces = []string{
	"abc", "Hello, world", "<script>&amp;</script>", "/", "a/b", "\x7f", "é", "中文", "😀", "🎉👍",
	"\u2028", "\u2029", "\ufeff", "\uffff", "\u0080", "https://cdn.example.com/image.png?a=1&b=2", " ", "'",
}

func (g *jsonGen) string() {
	g.b = append(g.b, '"')
	for n := g.r.IntN(7); n > 0; n-- {
		switch g.r.IntN(12) {
		case 0, 1, 2:
			g.b = append(g.b, literalPieces[g.r.IntN(len(literalPieces))]...)
		case 3:
			g.b = append(g.b, [...]string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`}[g.r.IntN(8)]...)
		case 4:
			g.hex4(g.r.IntN(0x20)) // control characters
		case 5:
			g.hex4([...]int{'A', 'a', '"', '\\', '/', '<', '>', '&', 0x7f, 0xe9, 0x2028, 0x2029, 0xfeff, 0xffff}[g.r.IntN(14)])
		case 6: // a surrogate pair written as escapes
			r := 0x10000 + g.r.IntN(0x100000)
			g.hex4(0xd800 + (r-0x10000)>>10)
			g.hex4(0xdc00 + (r-0x10000)&0x3ff)
		case 7: // a lone surrogate, high or low
			g.hex4(0xd800 + g.r.IntN(0x800))
		case 8: // a high surrogate followed by something that is not its pair
			g.hex4(0xd800 + g.r.IntN(0x400))
			g.b = append(g.b, [...]string{"x", `\n`, "😀", `\ud83d`, `\u0041`}[g.r.IntN(5)]...)
		case 9: // any BMP character, escaped
			g.hex4(g.r.IntN(0x10000))
		default: // any non-surrogate character, literally
			r := rune(g.r.IntN(0x110000))
			if r < 0x20 || r == '"' || r == '\\' || (r >= 0xd800 && r < 0xe000) {
				r = 'z'
			}
			g.b = utf8.AppendRune(g.b, r)
		}
	}
	g.b = append(g.b, '"')
}

// numberPool holds the values the brief and ECMA-262 single out.
var numberPool = []string{
	"0", "-0", "0.0", "-0.0", "1", "-1", "1.0", "0.1", "1e21", "1e20", "1e-7", "1e-6", "1.5e-7", "5e-324", "-5e-324",
	"1.7976931348623157e308", "-1.7976931348623157e308", "1E5", "1e+5", "1.50e-3", "9007199254740992", "-9007199254740992",
	"9007199254740991", "9007199254740994", "100000000000000000000", "-210000000000000000000", "100000000000000000000.00",
	"12345678901234567000", "4294967294", "4294967295", "123456789012345678000e0", "0.30000000000000004", "2e-324", "1e-400",
	"100e-2", "999999999999999999999e0", "12345678901234567890.5", "9007199254740992.0",
	// Refused ones, rarer thanks to the pool's size.
	"9007199254740993", "-9007199254740993", "18446744073709551616", "1152921504606846976", "12345678901234567890.0", "1e400", "-1e309",
}

func (g *jsonGen) number() {
	switch g.r.IntN(6) {
	case 0:
		g.b = append(g.b, numberPool[g.r.IntN(len(numberPool))]...)
	case 1: // an integer within ±2^53, any magnitude
		n := g.r.Int64N(int64(math.Pow10(1 + g.r.IntN(16))))
		if n > 1<<53 {
			n = 1 << 53
		}
		if g.r.IntN(2) == 0 {
			n = -n
		}
		g.b = strconv.AppendInt(g.b, n, 10)
	case 2: // any finite double, from its bits
		f := math.Float64frombits(g.r.Uint64())
		if math.IsInf(f, 0) || math.IsNaN(f) {
			f = 1.5
		}
		g.float(f)
	default: // a double of a usual size
		g.float(g.r.NormFloat64() * math.Pow10(g.r.IntN(50)-25))
	}
}

// float writes f in one of several valid JSON spellings.
func (g *jsonGen) float(f float64) {
	var s string
	switch g.r.IntN(5) {
	case 0:
		s = strconv.FormatFloat(f, 'e', -1, 64)
	case 1:
		s = strconv.FormatFloat(f, 'e', g.r.IntN(20), 64)
	case 2:
		s = strconv.FormatFloat(f, 'g', -1, 64)
	case 3:
		s = strconv.FormatFloat(f, 'f', -1, 64) // may be a long integer literal
	default:
		s = strconv.FormatFloat(f, 'g', 1+g.r.IntN(20), 64)
	}
	if i := strings.IndexByte(s, 'e'); i >= 0 {
		mant, exp := s[:i], s[i+1:]
		if g.r.IntN(3) == 0 && !strings.Contains(mant, ".") {
			mant += ".0" + strings.Repeat("0", g.r.IntN(3))
		}
		sign := exp[0]
		exp = strings.TrimLeft(exp[1:], "0")
		if exp == "" {
			exp = "0"
		}
		if g.r.IntN(3) == 0 {
			exp = strings.Repeat("0", 1+g.r.IntN(3)) + exp
		}
		if sign == '+' && g.r.IntN(2) == 0 {
			sign = 0
		}
		e := "e"
		if g.r.IntN(3) == 0 {
			e = "E"
		}
		s = mant + e
		if sign != 0 {
			s += string(sign)
		}
		s += exp
	} else if strings.Contains(s, ".") && g.r.IntN(3) == 0 {
		s += strings.Repeat("0", 1+g.r.IntN(3))
	}
	g.b = append(g.b, s...)
}

// mutate breaks doc in one random place, for checking that we reject what
// JSON.parse rejects and nothing else.
func (g *jsonGen) mutate(doc []byte) []byte {
	if len(doc) == 0 {
		return []byte("x")
	}
	i := g.r.IntN(len(doc))
	junk := []byte(`,:[]{}"\0-.eE+ 1x` + "\t\x00\x01")
	switch g.r.IntN(4) {
	case 0:
		return append(bytes.Clone(doc[:i]), doc[i+1:]...)
	case 1:
		out := bytes.Clone(doc[:i])
		out = append(out, junk[g.r.IntN(len(junk))])
		return append(out, doc[i:]...)
	case 2:
		out := bytes.Clone(doc)
		out[i] = junk[g.r.IntN(len(junk))]
		return out
	default:
		return bytes.Clone(doc[:i])
	}
}

// refusalFacts is what an independent reading (encoding/json tokens, math/big
// and node itself) finds in a well-formed input that JavaScript cannot carry
// unchanged.
type refusalFacts struct {
	unsafeInteger, overflow, tooDeep bool
}

func (f refusalFacts) any() bool { return f.unsafeInteger || f.overflow || f.tooDeep }

// allows reports whether err is a refusal these facts justify.
func (f refusalFacts) allows(err error) bool {
	return (errors.Is(err, ErrUnsafeInteger) && f.unsafeInteger) ||
		(errors.Is(err, ErrNumberOverflow) && f.overflow) ||
		(errors.Is(err, ErrTooDeep) && f.tooDeep)
}

var twoTo53 = new(big.Int).Lsh(big.NewInt(1), 53)

// findRefusals lists what must be refused in in: nesting deeper than
// MaxDepth, numbers that overflow a double, and integer literals beyond 2^53
// (written without an exponent, with no or an all-zero fraction) that node
// does not print back digit for digit.
func findRefusals(tb testing.TB, node *nodeRef, in []byte) (refusalFacts, error) {
	var facts refusalFacts
	var bigInts, expInts [][]byte
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return facts, err
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '[' || v == '{' {
				depth++
				if depth > MaxDepth {
					facts.tooDeep = true
				}
			} else {
				depth--
			}
		case json.Number:
			lit := string(v)
			if !strings.ContainsAny(lit, "eE") {
				sign, digits := "", lit
				if strings.HasPrefix(lit, "-") {
					sign, digits = "-", lit[1:]
				}
				intPart, frac, _ := strings.Cut(digits, ".")
				n, _ := new(big.Int).SetString(intPart, 10)
				if n.Cmp(twoTo53) > 0 && strings.Trim(frac, "0") == "" {
					bigInts = append(bigInts, []byte(sign+intPart))
				}
			}
			f, _ := strconv.ParseFloat(lit, 64)
			if math.IsInf(f, 0) {
				facts.overflow = true
			} else if strings.ContainsAny(lit, "eE") {
				if r, ok := new(big.Rat).SetString(lit); ok && r.IsInt() && new(big.Int).Abs(r.Num()).Cmp(twoTo53) > 0 {
					expInts = append(expInts, []byte(lit))
				}
			}
		}
	}
	if len(bigInts) > 0 {
		for i, ref := range node.roundTripMany(tb, bigInts) {
			if !bytes.Equal(ref.out, bigInts[i]) {
				facts.unsafeInteger = true
			}
		}
	}
	if len(expInts) > 0 {
		// Written with an exponent: refused when the value node prints is not
		// the same integer.
		for i, ref := range node.roundTripMany(tb, expInts) {
			exact, _ := new(big.Rat).SetString(string(expInts[i]))
			got, ok := new(big.Rat).SetString(string(ref.out))
			if !ok || exact.Cmp(got) != 0 {
				facts.unsafeInteger = true
			}
		}
	}
	return facts, nil
}

// checkAgainstNode asserts that Canonicalize(in) agrees with node's answer:
// the same bytes when JSON.parse accepts in and JavaScript holds every value
// exactly, a justified refusal when it cannot, and an error when JSON.parse
// throws.
func checkAgainstNode(t testing.TB, node *nodeRef, in []byte, got []byte, err error, ref nodeResult) {
	t.Helper()
	if !utf8.Valid(in) {
		// Node would decode the bytes with U+FFFD replacements: not
		// comparable. We must refuse, for the bad bytes or for something
		// met before them.
		if err == nil {
			t.Errorf("input %q is not UTF-8: Canonicalize = %q, want an error", in, got)
		}
		return
	}
	if ref.err != "" {
		if err == nil {
			t.Errorf("JSON.parse rejects %q (%s) but Canonicalize returned %q", in, ref.err, got)
		}
		return
	}
	if errors.Is(err, ErrInvalidJSON) {
		t.Errorf("Canonicalize(%q) = %v, but JSON.parse accepts it: %s", in, err, ref)
		return
	}
	facts, ferr := findRefusals(t, node, in)
	if ferr != nil {
		t.Errorf("encoding/json cannot read %q, which node accepts: %v", in, ferr)
		return
	}
	if err != nil {
		if !facts.allows(err) {
			t.Errorf("Canonicalize(%q) refused with %v, but the input holds no such value (facts %+v); node: %s", in, err, facts, ref)
		}
		return
	}
	if facts.any() {
		t.Errorf("Canonicalize(%q) = %q, but it must refuse (facts %+v)", in, got, facts)
		return
	}
	if !bytes.Equal(got, ref.out) {
		t.Errorf("Canonicalize(%q)\n got %s\nwant %s (node)", in, got, ref.out)
	}
}

const (
	differentialValues  = 5000
	differentialMutants = 2000
)

// TestCanonicalizeMatchesNode compares Canonicalize with real Node.js on
// thousands of random values and broken variants of them.
func TestCanonicalizeMatchesNode(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	g := newJSONGen(20241223)
	var inputs [][]byte
	for range differentialValues {
		inputs = append(inputs, g.document())
	}
	for i := range differentialMutants {
		inputs = append(inputs, g.mutate(inputs[i]))
	}
	refs := node.roundTripMany(t, inputs)

	var same, refused, malformed int
	for i, in := range inputs {
		got, err := Canonicalize(in)
		checkAgainstNode(t, node, in, got, err, refs[i])
		switch {
		case err == nil:
			same++
		case errors.Is(err, ErrInvalidJSON):
			malformed++
		default:
			refused++
		}
		if t.Failed() && i > 20 {
			t.Fatalf("stopping after failures")
		}
	}
	t.Logf("%d inputs: %d identical to node, %d refused (unsafe for JavaScript), %d rejected as malformed", len(inputs), same, refused, malformed)
	if same < differentialValues*3/4 {
		t.Errorf("only %d of %d random values were comparable; the generator refuses too often", same, differentialValues)
	}
}

// TestEncodePayloadIsNodeFixedPoint checks that bodies survive a receiver's
// JSON.stringify(JSON.parse(body)) unchanged, whatever strings and data
// they hold.
func TestEncodePayloadIsNodeFixedPoint(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	g := newJSONGen(7)
	runes := []rune("aZ09 \"\\/<>&'\x00\x01\x1f\x7f\u0080é中\u2028\u2029\ufeff😀\t\n\r\b\f")
	randomString := func() string {
		var sb strings.Builder
		for n := g.r.IntN(12); n > 0; n-- {
			sb.WriteRune(runes[g.r.IntN(len(runes))])
		}
		return sb.String()
	}
	var bodies [][]byte
	for len(bodies) < 500 {
		data := g.document()
		if _, err := Canonicalize(data); err != nil {
			continue
		}
		if g.r.IntN(20) == 0 {
			data = nil
		}
		body, err := EncodePayload(Payload{
			Event: randomString(), TaskID: randomString(), TaskType: randomString(),
			Status: randomString(), Data: data, Timestamp: randomString(),
		})
		if err != nil {
			t.Fatalf("EncodePayload: %v", err)
		}
		bodies = append(bodies, body)
	}
	for i, ref := range node.roundTripMany(t, bodies) {
		if !bytes.Equal(bodies[i], ref.out) {
			t.Errorf("body is not a fixed point of JSON.stringify(JSON.parse(body)):\n body %q\n node %s", bodies[i], ref)
		}
	}
}

// TestNumbersMatchNode aims at number formatting alone: decimals with 1 to 17
// significant digits and the point anywhere (including 0.00000…), integers
// around 2^53 and 1e21, and exponent forms, each compared with node.
func TestNumbersMatchNode(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	r := rand.New(rand.NewPCG(53, 21))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		b[0] = byte('1' + r.IntN(9))
		return string(b)
	}
	var inputs [][]byte
	for range 4000 {
		sig := digits(1 + r.IntN(17))
		var lit string
		switch r.IntN(5) {
		case 0: // d.ddd with the point inside
			p := 1 + r.IntN(len(sig))
			lit = sig[:p] + "." + sig[p:] + "0"
			if p == len(sig) {
				lit = sig + ".0"
			}
		case 1: // 0.000ddd
			lit = "0." + strings.Repeat("0", r.IntN(9)) + sig + strings.Repeat("0", r.IntN(2))
		case 2: // integers up to 22 digits, often refused
			lit = sig + strings.Repeat("0", r.IntN(8))
		case 3:
			lit = sig + "e" + strconv.Itoa(r.IntN(60)-30)
		default:
			lit = sig[:1] + "." + sig[1:] + "0E-" + strconv.Itoa(r.IntN(12))
		}
		if r.IntN(2) == 0 {
			lit = "-" + lit
		}
		inputs = append(inputs, []byte(lit))
	}
	refs := node.roundTripMany(t, inputs)
	for i, in := range inputs {
		got, err := Canonicalize(in)
		checkAgainstNode(t, node, in, got, err, refs[i])
	}
}
