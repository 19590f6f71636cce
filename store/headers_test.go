package store

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/nanohook/nanohook"
)

func TestHeadersRoundTrip(t *testing.T) {
	for _, hs := range [][]nanohook.Header{
		nil,
		{{Name: "Content-Type", Value: "application/json"}},
		{{Name: "A", Value: "q\"\\\x00\x1f\u2028 \U0001F600"}, {Name: "", Value: ""}},
	} {
		enc := EncodeHeaders(hs)
		if !json.Valid([]byte(enc)) {
			t.Fatalf("invalid JSON %q", enc)
		}
		got, err := DecodeHeaders(enc)
		if err != nil || !slices.Equal(got, hs) {
			t.Fatalf("%q: %v, %v", enc, got, err)
		}
	}
	got, err := DecodeHeaders(EncodeHeaders([]nanohook.Header{{Name: "X", Value: "a\xffb"}}))
	if err != nil || got[0].Value != "a\ufffdb" {
		t.Fatalf("invalid UTF-8: %v, %v", got, err)
	}
}
