package webhook_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/nanohook/nanohook/webhook"
)

// A receiver that only sees authentic deliveries. During a secret rotation,
// list both secrets.
func ExampleMiddleware() {
	v := &webhook.Verifier{Secrets: []string{os.Getenv("NANO_WEBHOOK_SECRET")}}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // verified bytes
		p, err := webhook.ParsePayload(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch p.Event {
		case webhook.EventJobCompleted:
			var result struct {
				URL string `json:"url"`
			}
			if err := p.DecodeData(&result); err == nil {
				log.Printf("task %s done: %s", p.TaskID, result.URL)
			}
		case webhook.EventJobFailed:
			log.Printf("task %s failed", p.TaskID)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	http.Handle("/hooks/nano", webhook.Middleware(v, handler))
}

// Canonicalize gives what a Node.js receiver gets back from
// JSON.stringify(JSON.parse(body)).
func ExampleCanonicalize() {
	out, err := webhook.Canonicalize([]byte(`{ "b": 1.50, "a": "\u003cok\u003e", "1": 1e21, "0": -0 }`))
	fmt.Println(string(out), err)

	_, err = webhook.Canonicalize([]byte(`{"items": [{"id": 9007199254740993}]}`))
	fmt.Println(err)
	// Output:
	// {"0":0,"1":1e+21,"b":1.5,"a":"<ok>"} <nil>
	// items[0].id: integer 9007199254740993 is beyond 2^53 and cannot be held exactly by JavaScript
}

// Sign fabricates a delivery's signature for a receiver's own tests.
func ExampleSign() {
	body, _ := webhook.EncodePayload(webhook.Payload{
		Event: webhook.EventJobCompleted, TaskID: "task_123", TaskType: "image", Status: webhook.StatusCompleted,
		Data: []byte(`{"url":"https://cdn.example.com/image.png","credits_charged":6}`), Timestamp: "2024-12-23T10:00:00Z",
	})
	fmt.Println(string(body))
	fmt.Println(webhook.Sign("whsec_test", 1734948000, body))
	// Output:
	// {"event":"job.completed","task_id":"task_123","task_type":"image","status":"completed","data":{"url":"https://cdn.example.com/image.png","credits_charged":6},"timestamp":"2024-12-23T10:00:00Z"}
	// v1=2193702030bf781e76f1bb8e14d52db9d843b9471f274bfe3ef6b4df682503aa
}
