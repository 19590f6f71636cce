package store

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/nanohook/nanohook"
)

// EncodeHeaders renders an attempt's request headers the way both drivers
// store them: a JSON array of [name, value] pairs, in order ("[]" for none).
// It is written by hand, one allocation, because it runs for every attempt
// on the completion path. Invalid UTF-8 becomes U+FFFD, as encoding/json
// would make it, so the text is always valid JSON and valid UTF-8.
func EncodeHeaders(hs []nanohook.Header) string {
	if len(hs) == 0 {
		return "[]"
	}
	n := 2
	for _, h := range hs {
		n += len(h.Name) + len(h.Value) + 8
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, h := range hs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendJSONString(b, h.Name)
		b = append(b, ',')
		b = appendJSONString(b, h.Value)
		b = append(b, ']')
	}
	b = append(b, ']')
	return string(b)
}

// DecodeHeaders reads what EncodeHeaders wrote. An empty array (or column)
// is nil.
func DecodeHeaders(s string) ([]nanohook.Header, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal([]byte(s), &pairs); err != nil {
		return nil, fmt.Errorf("request headers: %w", err)
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	hs := make([]nanohook.Header, len(pairs))
	for i, p := range pairs {
		hs[i] = nanohook.Header{Name: p[0], Value: p[1]}
	}
	return hs, nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
