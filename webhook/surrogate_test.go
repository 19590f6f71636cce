package webhook

import "testing"

func TestHasLoneSurrogate(t *testing.T) {
	for _, tc := range []struct {
		json string
		want bool
	}{
		{`"plain"`, false},
		{`"\ud83d\ude00"`, false}, // a pair: 😀
		{`"\uD83D\uDE00"`, false}, // upper-case hex
		{`"\ud800"`, true},        // a high half alone
		{`"\udc00"`, true},        // a low half alone
		{`"\ud83d x"`, true},      // a high half followed by text
		{`"\ud83d\u0041"`, true},  // followed by an escape that is not a low half
		{`"\ude00\ud83d"`, true},  // halves in the wrong order
		{`"\\ud800"`, false},      // an escaped backslash, then text
		{`"\\\ud800"`, true},      // an escaped backslash, then the escape
		{`{"a":"\ud83d\ude00","b":"\udfff"}`, true},
		{`"\u00e9\u2028"`, false},
	} {
		if got := HasLoneSurrogate([]byte(tc.json)); got != tc.want {
			t.Errorf("HasLoneSurrogate(%s) = %v, want %v", tc.json, got, tc.want)
		}
	}
}
