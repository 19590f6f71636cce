package webhook

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// benchJob is a realistic completed-job data object as a worker would publish
// it (pretty-printed, about 300 bytes).
const benchJob = `{
  "url": "https://cdn.example.com/outputs/2024/12/23/task_01HFZ3K8J9.png",
  "thumbnail_url": "https://cdn.example.com/outputs/2024/12/23/task_01HFZ3K8J9_thumb.webp",
  "width": 1024,
  "height": 1024,
  "seed": 1234567890,
  "model": "sdxl-turbo",
  "credits_charged": 6,
  "duration_ms": 1834.5,
  "nsfw": false
}`

// benchBatch is a 4 KiB data object: a batch of images with prompts holding
// non-ASCII text and characters that need escaping.
var benchBatch = func() string {
	var b strings.Builder
	b.WriteString(`{"batch_id":"batch_77","images":[`)
	for i := 0; b.Len() < 4000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"index":%d,"url":"https://cdn.example.com/o/%d.png","prompt":"a café at dusk, \"cinematic\" — 夜景 %d","score":0.%d7,"tags":["photo","4k"]}`, i, 1000+i, i, i)
	}
	b.WriteString(`],"credits_charged":24}`)
	return b.String()
}()

func BenchmarkCanonicalize(b *testing.B) {
	for _, in := range []struct{ name, data string }{{"job-300B", benchJob}, {"batch-4KiB", benchBatch}} {
		raw := []byte(in.data)
		if _, err := Canonicalize(raw); err != nil {
			b.Fatal(err)
		}
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := Canonicalize(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/append-reuse", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			buf := make([]byte, 0, 2*len(raw))
			for b.Loop() {
				var err error
				if buf, err = AppendCanonical(buf[:0], raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	body, err := EncodePayload(Payload{Event: EventJobCompleted, TaskID: "task_01HFZ3K8J9", TaskType: "image",
		Status: StatusCompleted, Data: []byte(benchJob), Timestamp: "2024-12-23T10:00:00Z"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Sign", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1734948000, body)
		}
	})
	b.Run("Signer.AppendSign", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		s := NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
		buf := make([]byte, 0, 80)
		for b.Loop() {
			buf = s.AppendSign(buf[:0], 1734948000, body)
		}
	})
}

func BenchmarkEncodePayload(b *testing.B) {
	p := Payload{Event: EventJobCompleted, TaskID: "task_01HFZ3K8J9", TaskType: "image",
		Status: StatusCompleted, Data: []byte(benchJob), Timestamp: "2024-12-23T10:00:00Z"}
	b.Run("EncodePayload", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodePayload(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendPayload-reuse", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			var err error
			if buf, err = AppendPayload(buf[:0], p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	body := []byte(benchJob)
	h := signedHeader("whsec_test", 1734948000, body)
	v := &Verifier{Secrets: []string{"whsec_test"}, Now: func() time.Time { return time.Unix(1734948000, 0) }}
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(h, body); err != nil {
			b.Fatal(err)
		}
	}
}
