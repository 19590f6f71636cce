package webhook

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// canonicalCase is one input with the output Node.js gives for
// JSON.stringify(JSON.parse(in)), checked with node when the table was
// written and again by TestCanonicalTableAgreesWithNode.
type canonicalCase struct {
	in   string
	want string // "" when Canonicalize must fail
	err  error  // the sentinel of the failure
}

var numberCases = []canonicalCase{
	{in: `0`, want: `0`},
	{in: `-0`, want: `0`},
	{in: `-0.0`, want: `0`},
	{in: `0.0`, want: `0`},
	{in: `1`, want: `1`},
	{in: `-1`, want: `-1`},
	{in: `1.0`, want: `1`},
	{in: `1.50`, want: `1.5`},
	{in: `100`, want: `100`},
	{in: `1e2`, want: `100`},
	{in: `1E5`, want: `100000`},
	{in: `1e+5`, want: `100000`},
	{in: `1e-5`, want: `0.00001`},
	{in: `1.50e-3`, want: `0.0015`},
	{in: `1e007`, want: `10000000`},
	{in: `0.1`, want: `0.1`},
	{in: `0.000001`, want: `0.000001`},
	{in: `1e-6`, want: `0.000001`},
	{in: `0.0000001`, want: `1e-7`},
	{in: `1e-7`, want: `1e-7`},
	{in: `1.5e-7`, want: `1.5e-7`},
	{in: `-1e-7`, want: `-1e-7`},
	{in: `2.5e-6`, want: `0.0000025`},
	{in: `123e-20`, want: `1.23e-18`},
	{in: `1e20`, want: `100000000000000000000`},
	{in: `1e21`, want: `1e+21`},
	{in: `-1e21`, want: `-1e+21`},
	{in: `1.2e21`, want: `1.2e+21`},
	{in: `1e300`, want: `1e+300`},
	{in: `-1.2345e300`, want: `-1.2345e+300`},
	{in: `1.7976931348623157e308`, want: `1.7976931348623157e+308`},
	{in: `5e-324`, want: `5e-324`},
	{in: `-5e-324`, want: `-5e-324`},
	{in: `2e-324`, want: `0`},
	{in: `1e-400`, want: `0`},
	{in: `-1e-400`, want: `0`},
	{in: `0.30000000000000004`, want: `0.30000000000000004`},
	{in: `3.14159`, want: `3.14159`},
	{in: `9007199254740992`, want: `9007199254740992`},
	{in: `-9007199254740992`, want: `-9007199254740992`},
	{in: `9007199254740991`, want: `9007199254740991`},
	{in: `9007199254740992.0`, want: `9007199254740992`},
	{in: `12345678901234567890.5`, want: `12345678901234567000`},
	{in: `4294967295`, want: `4294967295`},
	{in: `1.0e20`, want: `100000000000000000000`},
	{in: `123.456e5`, want: `12345600`},
	{in: `1.23456789012345678901234567890`, want: `1.2345678901234567`},
	{in: `0.1e1`, want: `1`},
	{in: `100e-2`, want: `1`},
	{in: `9.999999999999999e20`, want: `999999999999999900000`},
	// Integers beyond 2^53 that JavaScript prints back digit for digit are
	// kept: the output of 1e20 must itself be accepted.
	{in: `100000000000000000000`, want: `100000000000000000000`},
	{in: `-210000000000000000000`, want: `-210000000000000000000`},
	{in: `100000000000000000000.00`, want: `100000000000000000000`},
	{in: `9007199254740994`, want: `9007199254740994`},
	{in: `12345678901234567000`, want: `12345678901234567000`},
	{in: `999999999999999900000`, want: `999999999999999900000`},

	// Refused: JavaScript would round them (node gives 9007199254740992,
	// -9007199254740992, 18446744073709552000, 12345678901234567000) or turn
	// them into null.
	{in: `9007199254740993`, err: ErrUnsafeInteger},
	{in: `-9007199254740993`, err: ErrUnsafeInteger},
	{in: `18446744073709551616`, err: ErrUnsafeInteger},
	{in: `1152921504606846976`, err: ErrUnsafeInteger}, // 2^60, a double, but printed 1152921504606847000
	{in: `9007199254740995`, err: ErrUnsafeInteger},
	{in: `100000000000000000001`, err: ErrUnsafeInteger},
	{in: `-` + strings.Repeat("9", 400), err: ErrUnsafeInteger},
	{in: `12345678901234567890.0`, err: ErrUnsafeInteger},
	{in: `12345678901234567890.000`, err: ErrUnsafeInteger},
	// Written with an exponent, refused alike when the value is an integer
	// that JavaScript would print as another one.
	{in: `9007199254740993e0`, err: ErrUnsafeInteger},
	{in: `123456789012345678000e0`, err: ErrUnsafeInteger},
	{in: `999999999999999999999e0`, err: ErrUnsafeInteger},
	{in: `1.7976931348623158e308`, err: ErrUnsafeInteger},
	{in: `1e400`, err: ErrNumberOverflow},
	{in: `-1e309`, err: ErrNumberOverflow},
	{in: `1.7976931348623159e308`, err: ErrNumberOverflow},
}

var stringCases = []canonicalCase{
	{in: `""`, want: `""`},
	{in: `"abc"`, want: `"abc"`},
	{in: `"\u0041\u0062"`, want: `"Ab"`},
	{in: `"\/"`, want: `"/"`},
	{in: `"a/b"`, want: `"a/b"`},
	{in: `"<>&"`, want: `"<>&"`},
	{in: `"\u003c\u003e\u0026"`, want: `"<>&"`},
	{in: `"\"\\"`, want: `"\"\\"`},
	{in: `"\b\f\n\r\t"`, want: `"\b\f\n\r\t"`},
	{in: `"\u0008\u000c\u000a\u000d\u0009"`, want: `"\b\f\n\r\t"`},
	{in: `"\u0000\u0001\u001f\u001F"`, want: `"\u0000\u0001\u001f\u001f"`},
	{in: `"\u007f"`, want: "\"\x7f\""},
	{in: "\"\x7f\"", want: "\"\x7f\""},
	{in: `"\u0080\u00e9"`, want: "\"\u0080é\""},
	{in: "\"\u2028\u2029\"", want: "\"\u2028\u2029\""},
	{in: `"\u2028\u2029"`, want: "\"\u2028\u2029\""},
	{in: `"é中😀"`, want: `"é中😀"`},
	{in: `"\ud83d\ude00"`, want: `"😀"`},
	{in: `"\uD83D\uDE00"`, want: `"😀"`},
	{in: `"\ud800"`, want: `"\ud800"`},
	{in: `"\uDBFF"`, want: `"\udbff"`},
	{in: `"\udc00"`, want: `"\udc00"`},
	{in: `"\ude00\ud83d"`, want: `"\ude00\ud83d"`},
	{in: `"\ud83d\ud83d\ude00"`, want: `"\ud83d😀"`},
	{in: `"\ud83d😀"`, want: `"\ud83d😀"`},
	{in: `"\ud800\u0041"`, want: `"\ud800A"`},
	{in: `"\ud800x"`, want: `"\ud800x"`},
	{in: `"x\ud800"`, want: `"x\ud800"`},
	{in: `"\ud800\n"`, want: `"\ud800\n"`},
	{in: `"\ufeff"`, want: "\"\ufeff\""},
	{in: `"\uffff"`, want: "\"\uffff\""},
	{in: `"\ud83d\ude00\ude00"`, want: `"😀\ude00"`},

	// Not UTF-8: node would replace the bytes with U+FFFD, we refuse.
	{in: "\"\xff\"", err: ErrInvalidJSON},
	{in: "\"\xc3\"", err: ErrInvalidJSON},
	{in: "\"\xed\xa0\x80\"", err: ErrInvalidJSON}, // an encoded surrogate
	{in: "\"\xc0\xaf\"", err: ErrInvalidJSON},     // overlong '/'
}

var structureCases = []canonicalCase{
	{in: `true`, want: `true`},
	{in: `false`, want: `false`},
	{in: `null`, want: `null`},
	{in: " \t\r\n[ 1 , \"a\" , null , true , false ] \n", want: `[1,"a",null,true,false]`},
	{in: `[]`, want: `[]`},
	{in: `{}`, want: `{}`},
	{in: `[[],{}]`, want: `[[],{}]`},
	{in: `{ "a" : [ 1 , { "b" : 2 } ] }`, want: `{"a":[1,{"b":2}]}`},
	{in: `{"b":1,"a":2}`, want: `{"b":1,"a":2}`},
	{in: `{"b":1,"a":2,"b":3}`, want: `{"b":3,"a":2}`},
	{in: `{"a":1,"\u0061":2}`, want: `{"a":2}`},
	{in: `{"a":{"x":1},"a":{"y":2}}`, want: `{"a":{"y":2}}`},
	{in: `{"x":1,"1":2,"0":3,"007":4,"-1":5,"4294967294":6,"4294967295":7,"1.5":8,"10":9}`, want: `{"0":3,"1":2,"10":9,"4294967294":6,"x":1,"007":4,"-1":5,"4294967295":7,"1.5":8}`},
	{in: `{"2":1,"1":2,"2":3}`, want: `{"1":2,"2":3}`},
	{in: `{"__proto__":1,"a":{"__proto__":[]}}`, want: `{"__proto__":1,"a":{"__proto__":[]}}`},
	{in: `{"__proto__":{"x":1},"__proto__":2}`, want: `{"__proto__":2}`},
	{in: `{"":1,"0":2}`, want: `{"0":2,"":1}`},
	{in: `{"00":1,"0":2,"01":3,"1":4}`, want: `{"0":2,"1":4,"00":1,"01":3}`},
	{in: `{"9007199254740993":1,"5":2}`, want: `{"5":2,"9007199254740993":1}`},
	{in: `{"\u0031":1,"0":2}`, want: `{"0":2,"1":1}`},
	{in: `{"b":1,"1":2,"a":{"3":1,"2":2},"0":3}`, want: `{"0":3,"1":2,"b":1,"a":{"2":2,"3":1}}`},
	{in: `{"1":"a","1":"b","0":"c"}`, want: `{"0":"c","1":"b"}`},
	{in: `{"constructor":1,"toString":2,"hasOwnProperty":3}`, want: `{"constructor":1,"toString":2,"hasOwnProperty":3}`},
	{in: `{"length":3,"0":1}`, want: `{"0":1,"length":3}`},
	{in: `{"+1":1,"1e3":2,"1":3,"4294967296":4}`, want: `{"1":3,"+1":1,"1e3":2,"4294967296":4}`},
}

// syntaxCases are all rejected by JSON.parse too.
var syntaxCases = []canonicalCase{
	{in: ``}, {in: `   `}, {in: `01`}, {in: `-01`}, {in: `-`}, {in: `+1`}, {in: `.5`},
	{in: `1.`}, {in: `1e`}, {in: `1e+`}, {in: `[1,]`}, {in: `{"a":1,}`}, {in: `{"a"}`},
	{in: `{a:1}`}, {in: `'a'`}, {in: `nul`}, {in: `NaN`}, {in: `Infinity`}, {in: `-Infinity`},
	{in: `true false`}, {in: `[1 2]`}, {in: `"\x"`}, {in: `"\u12"`}, {in: `"\u12G4"`},
	{in: "\"a\tb\""}, {in: "\"a\nb\""}, {in: `"abc`}, {in: `[1`}, {in: `{"a":1`},
	{in: "\ufeff1"}, {in: "\u00a01"}, {in: "\f1"}, {in: `1 /*c*/`}, {in: `{"a":1}}`},
	{in: `0x10`}, {in: `1_000`}, {in: `[.1]`}, {in: `-.1`}, {in: `"\U0041"`},
	{in: `[`}, {in: `{`}, {in: `{"a":`}, {in: `"\`}, {in: `"\u`}, {in: `tru`}, {in: `nulll`},
}

func allCanonicalCases() []canonicalCase {
	var all []canonicalCase
	all = append(all, numberCases...)
	all = append(all, stringCases...)
	all = append(all, structureCases...)
	for _, c := range syntaxCases {
		c.err = ErrInvalidJSON
		all = append(all, c)
	}
	return all
}

func TestCanonicalize(t *testing.T) {
	t.Parallel()
	for _, tc := range allCanonicalCases() {
		got, err := Canonicalize([]byte(tc.in))
		if tc.err != nil {
			var ce *CanonicalError
			if !errors.As(err, &ce) || !errors.Is(err, tc.err) {
				t.Errorf("Canonicalize(%q) = %q, %v; want a *CanonicalError wrapping %v", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("Canonicalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestCanonicalTableAgreesWithNode keeps the table honest: every expected
// output is what node prints, every syntax error is one JSON.parse throws.
func TestCanonicalTableAgreesWithNode(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	cases := allCanonicalCases()
	inputs := make([][]byte, len(cases))
	for i, tc := range cases {
		inputs[i] = []byte(tc.in)
	}
	for i, res := range node.roundTripMany(t, inputs) {
		tc := cases[i]
		switch {
		case tc.err == nil && string(res.out) != tc.want:
			t.Errorf("table says %q -> %q, node says %s", tc.in, tc.want, res)
		case errors.Is(tc.err, ErrInvalidJSON) && res.err == "" && utf8.ValidString(tc.in):
			t.Errorf("table says %q is malformed, node accepts it: %s", tc.in, res)
		case errors.Is(tc.err, ErrUnsafeInteger) && (res.err != "" || string(res.out) == strings.TrimSuffix(strings.TrimRight(tc.in, "0"), ".")):
			t.Errorf("table refuses %q as altered by JavaScript, node prints %s", tc.in, res)
		case errors.Is(tc.err, ErrNumberOverflow) && string(res.out) != "null":
			t.Errorf("table refuses %q as overflowing, node prints %s", tc.in, res)
		}
	}
}

func TestAppendCanonical(t *testing.T) {
	t.Parallel()
	dst := []byte("prefix:")
	got, err := AppendCanonical(dst, []byte(` {"b" : 1, "a": [1.0, "\u0041"]} `))
	if err != nil || string(got) != `prefix:{"b":1,"a":[1,"A"]}` {
		t.Fatalf("AppendCanonical = %q, %v", got, err)
	}
	got, err = AppendCanonical(dst, []byte(`{"a": 9007199254740993}`))
	if err == nil || string(got) != "prefix:" {
		t.Fatalf("AppendCanonical on refused input = %q, %v; want dst unchanged and an error", got, err)
	}
}

func TestCanonicalErrorPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, path, msg string
		err           error
	}{
		{`9007199254740993`, ``, `integer 9007199254740993 is beyond 2^53 and cannot be held exactly by JavaScript`, ErrUnsafeInteger},
		{`{"items":[1,2,3,{"id":9007199254740993}]}`, `items[3].id`, `items[3].id: integer 9007199254740993 is beyond 2^53 and cannot be held exactly by JavaScript`, ErrUnsafeInteger},
		{`{"a":{"b":-9007199254740993}}`, `a.b`, `a.b: integer -9007199254740993 is beyond 2^53 and cannot be held exactly by JavaScript`, ErrUnsafeInteger},
		{`[0,[1e400]]`, `[1][0]`, `[1][0]: number 1e400 is beyond JavaScript's range (JSON.stringify would turn it into null)`, ErrNumberOverflow},
		{`{"a.b":{"":12345678901234567890.0}}`, `["a.b"][""]`, `["a.b"][""]: number 12345678901234567890.0 is an integer beyond 2^53 and cannot be held exactly by JavaScript`, ErrUnsafeInteger},
		{`{"ok":1,"x":[1,}`, `x[1]`, `x[1]: invalid JSON: unexpected character '}' at offset 15`, ErrInvalidJSON},
		{`{"ok":1,"bad` + "\xff" + `":1}`, ``, `invalid UTF-8 at offset 12`, ErrInvalidJSON},
		{`{"a":"x"} x`, ``, `invalid JSON: unexpected data after the top-level value at offset 10`, ErrInvalidJSON},
		{`{"a":[`, `a[0]`, `a[0]: invalid JSON: unexpected end of input`, ErrInvalidJSON},
	}
	for _, tc := range tests {
		_, err := Canonicalize([]byte(tc.in))
		var ce *CanonicalError
		if !errors.As(err, &ce) {
			t.Errorf("Canonicalize(%q) error = %v, want a *CanonicalError", tc.in, err)
			continue
		}
		if ce.Path != tc.path || err.Error() != tc.msg || !errors.Is(err, tc.err) {
			t.Errorf("Canonicalize(%q): path %q, error %q (is %v: %t); want path %q, error %q", tc.in, ce.Path, err, tc.err, errors.Is(err, tc.err), tc.path, tc.msg)
		}
	}
}

func TestCanonicalizeDepth(t *testing.T) {
	t.Parallel()
	nest := func(n int, open, close string) []byte {
		return []byte(strings.Repeat(open, n) + "1" + strings.Repeat(close, n))
	}
	for _, shape := range [][2]string{{"[", "]"}, {`{"a":`, "}"}} {
		ok := nest(MaxDepth, shape[0], shape[1])
		got, err := Canonicalize(ok)
		if err != nil || !bytes.Equal(got, ok) {
			t.Errorf("depth %d %s: got %v", MaxDepth, shape[0], err)
		}
		_, err = Canonicalize(nest(MaxDepth+1, shape[0], shape[1]))
		if !errors.Is(err, ErrTooDeep) {
			t.Errorf("depth %d %s: error %v, want ErrTooDeep", MaxDepth+1, shape[0], err)
		}
	}
	// Deep but unclosed input must not be reported as a depth problem first.
	if _, err := Canonicalize([]byte(strings.Repeat("[", 10))); !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("unclosed arrays: %v, want ErrInvalidJSON", err)
	}
}

// TestCanonicalizeLargeObject covers the map-based duplicate detection and
// the reordering of an object with many members.
func TestCanonicalizeLargeObject(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < 300; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		switch i % 3 {
		case 0:
			b.WriteString(`"k` + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + `":` + strings.Repeat("1", 1+i%5))
		case 1:
			b.WriteString(`"` + string(rune('0'+i%10)) + string(rune('0'+i/10%10)) + `":"v"`)
		default:
			b.WriteString(`"dup` + string(rune('a'+i%7)) + `":[` + string(rune('0'+i%10)) + `]`)
		}
	}
	b.WriteString("}")
	in := []byte(b.String())
	got, err := Canonicalize(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := node.roundTrip(t, in); !bytes.Equal(got, want.out) {
		t.Fatalf("large object:\n got %s\nwant %s", got, want)
	}
}
