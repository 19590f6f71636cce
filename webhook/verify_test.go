package webhook

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// signedHeader builds the headers nanohook sends for body at ts.
func signedHeader(secret string, ts int64, body []byte) http.Header {
	h := http.Header{}
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, Sign(secret, ts, body))
	return h
}

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1734948000, 0)
	clock := func() time.Time { return now }
	body := []byte(signVector.body)
	ts := now.Unix()

	tests := []struct {
		name    string
		v       Verifier
		header  func() http.Header
		body    []byte
		wantErr error
	}{
		{
			name:   "good signature",
			v:      Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header: func() http.Header { return signedHeader("s3cret-one", ts, body) },
		},
		{
			name: "known vector",
			v:    Verifier{Secrets: []string{signVector.secret}, Now: func() time.Time { return time.Unix(signVector.ts+10, 0) }},
			header: func() http.Header {
				h := http.Header{}
				h.Set(HeaderTimestamp, strconv.FormatInt(signVector.ts, 10))
				h.Set(HeaderSignature, signVector.sig)
				return h
			},
		},
		{
			name:    "wrong secret",
			v:       Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header:  func() http.Header { return signedHeader("s3cret-two", ts, body) },
			wantErr: ErrSignatureMismatch,
		},
		{
			name:    "tampered body",
			v:       Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header:  func() http.Header { return signedHeader("s3cret-one", ts, body) },
			body:    append([]byte(nil), append(body[:len(body)-1:len(body)-1], ' ', '}')...),
			wantErr: ErrSignatureMismatch,
		},
		{
			name: "signature for another timestamp",
			v:    Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header: func() http.Header {
				h := signedHeader("s3cret-one", ts, body)
				h.Set(HeaderTimestamp, strconv.FormatInt(ts-1, 10))
				return h
			},
			wantErr: ErrSignatureMismatch,
		},
		{
			name:    "old timestamp",
			v:       Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header:  func() http.Header { return signedHeader("s3cret-one", ts-301, body) },
			wantErr: ErrTimestampOutOfTolerance,
		},
		{
			name:    "future timestamp",
			v:       Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header:  func() http.Header { return signedHeader("s3cret-one", ts+301, body) },
			wantErr: ErrTimestampOutOfTolerance,
		},
		{
			name:   "edge of the default tolerance",
			v:      Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header: func() http.Header { return signedHeader("s3cret-one", ts-300, body) },
		},
		{
			name:    "custom tolerance",
			v:       Verifier{Secrets: []string{"s3cret-one"}, Now: clock, Tolerance: 10 * time.Second},
			header:  func() http.Header { return signedHeader("s3cret-one", ts+11, body) },
			wantErr: ErrTimestampOutOfTolerance,
		},
		{
			name:    "absurd timestamp",
			v:       Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header:  func() http.Header { return signedHeader("s3cret-one", 1<<62, body) },
			wantErr: ErrTimestampOutOfTolerance,
		},
		{
			name: "previous-secret header during rotation",
			v:    Verifier{Secrets: []string{"old-secret"}, Now: clock},
			header: func() http.Header {
				h := signedHeader("new-secret", ts, body)
				h.Set(HeaderSignaturePrevious, Sign("old-secret", ts, body))
				return h
			},
		},
		{
			name:   "several secrets, second matches",
			v:      Verifier{Secrets: []string{"", "new-secret", "old-secret"}, Now: clock},
			header: func() http.Header { return signedHeader("old-secret", ts, body) },
		},
		{
			name: "several values in one header",
			v:    Verifier{Secrets: []string{"old-secret"}, Now: clock},
			header: func() http.Header {
				h := signedHeader("new-secret", ts, body)
				h.Set(HeaderSignature, "v0=abc, "+Sign("new-secret", ts, body)+" "+Sign("old-secret", ts, body))
				return h
			},
		},
		{
			name: "repeated header",
			v:    Verifier{Secrets: []string{"old-secret"}, Now: clock},
			header: func() http.Header {
				h := signedHeader("new-secret", ts, body)
				h.Add(HeaderSignature, Sign("old-secret", ts, body))
				return h
			},
		},
		{
			name: "uppercase hex is not the signature",
			v:    Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header: func() http.Header {
				h := signedHeader("s3cret-one", ts, body)
				sig := h.Get(HeaderSignature)
				h.Set(HeaderSignature, "v1="+upper(sig[3:]))
				return h
			},
			wantErr: ErrSignatureMismatch,
		},
		{
			name: "missing signature",
			v:    Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header: func() http.Header {
				h := signedHeader("s3cret-one", ts, body)
				h.Del(HeaderSignature)
				return h
			},
			wantErr: ErrMissingSignature,
		},
		{
			name: "no v1 value",
			v:    Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header: func() http.Header {
				h := signedHeader("s3cret-one", ts, body)
				h.Set(HeaderSignature, "v2=abcdef")
				return h
			},
			wantErr: ErrMissingSignature,
		},
		{
			name: "missing timestamp",
			v:    Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header: func() http.Header {
				h := signedHeader("s3cret-one", ts, body)
				h.Del(HeaderTimestamp)
				return h
			},
			wantErr: ErrMissingTimestamp,
		},
		{
			name: "timestamp not Unix seconds",
			v:    Verifier{Secrets: []string{"s3cret-one"}, Now: clock},
			header: func() http.Header {
				h := signedHeader("s3cret-one", ts, body)
				h.Set(HeaderTimestamp, "2024-12-23T10:00:00Z")
				return h
			},
			wantErr: ErrInvalidTimestamp,
		},
		{
			name:    "no secrets",
			v:       Verifier{Secrets: []string{""}, Now: clock},
			header:  func() http.Header { return signedHeader("", ts, body) },
			wantErr: ErrNoSecrets,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := body
			if tc.body != nil {
				b = tc.body
			}
			err := tc.v.Verify(tc.header(), b)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestVerifyDefaultClock(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event":"ping"}`)
	v := &Verifier{Secrets: []string{"s"}}
	if err := v.Verify(signedHeader("s", time.Now().Unix(), body), body); err != nil {
		t.Fatalf("Verify with the real clock: %v", err)
	}
	if err := v.Verify(signedHeader("s", time.Now().Add(-DefaultTolerance-time.Minute).Unix(), body), body); !errors.Is(err, ErrTimestampOutOfTolerance) {
		t.Fatalf("stale delivery with the real clock: %v", err)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
