package bench

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/nanohook/nanohook/client"
)

// steadyTick is how often the steady publisher sends a batch: rate/100
// events every 10 ms.
const steadyTick = 10 * time.Millisecond

// publishLog is what the publishers did, for joining with the receipts
// afterwards (a delivery may arrive before its batch's answer does).
type publishLog struct {
	batches    []publishedBatch
	deliveries int       // deliveries the server reported creating
	first      time.Time // first batch sent
	lastSent   time.Time // last batch sent
	last       time.Time // last answer received
	behind     string    // steady: how far the publishers fell behind the rate, if they did
}

// publishedBatch is one acknowledged batch request.
type publishedBatch struct {
	sent time.Time     // when the request was sent: every event's publish start
	took time.Duration // until its answer came
	ids  []string      // event ids, from the answer
}

// events counts the acknowledged events.
func (l *publishLog) events() int {
	n := 0
	for _, b := range l.batches {
		n += len(b.ids)
	}
	return n
}

// batchJob is one batch to publish: events [from, to) of the run.
type batchJob struct{ index, from, to int }

// publishAll publishes events as fast as --publishers concurrent batch
// requests go, and checks that the server created expect deliveries.
func (e *benchEnv) publishAll(ctx context.Context, events, expect int) (publishLog, error) {
	return e.publishInRequests(ctx, events, expect, e.b.cfg.Batch, e.b.cfg.Publishers)
}

// publishSingles publishes events one a request, from --single-publishers
// concurrent publishers, as the platform's job workers do, and checks
// that the server created expect deliveries.
func (e *benchEnv) publishSingles(ctx context.Context, events, expect int) (publishLog, error) {
	return e.publishInRequests(ctx, events, expect, 1, e.b.cfg.SinglePublishers)
}

// publishInRequests publishes events in requests of size events from
// publishers concurrent publishers, as fast as they go, and checks that
// the server created expect deliveries.
func (e *benchEnv) publishInRequests(ctx context.Context, events, expect, size, publishers int) (publishLog, error) {
	n := (events + size - 1) / size
	jobs := make(chan batchJob, n)
	for i := range n {
		jobs <- batchJob{index: i, from: i * size, to: min((i+1)*size, events)}
	}
	close(jobs)
	log, err := e.publish(ctx, jobs, n, publishers)
	if err == nil && log.deliveries != expect {
		err = fmt.Errorf("the server created %d deliveries for %d events; the endpoints imply %d", log.deliveries, events, expect)
	}
	return log, err
}

// steadyPublishers is the least number of concurrent publishers at a fixed
// rate, as many workers of the platform publish at once: a batch waiting
// for a free publisher would lower the rate instead of showing the server's
// latency.
const steadyPublishers = 32

// publishSteady sends a batch every steadyTick, holding the events due by
// then at rate a second, for batches ticks. A batch whose turn comes while
// every publisher is busy goes out late; its events' latency starts when it
// is actually sent, and the achieved rate shows the shortfall.
//
// With --steady-single the events due at each tick go one a request
// (e.single), each its own job, from at least --single-publishers
// publishers.
func (e *benchEnv) publishSteady(ctx context.Context, rate float64, batches, events int) (publishLog, error) {
	slots, publishers := batches, max(e.b.cfg.Publishers, steadyPublishers)
	if e.single {
		slots, publishers = events, max(e.b.cfg.SinglePublishers, steadyPublishers)
	}
	jobs := make(chan batchJob, slots)
	go func() {
		defer close(jobs)
		start := time.Now()
		for k := range batches {
			if d := time.Until(start.Add(time.Duration(k) * steadyTick)); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			from, to := eventsBefore(k, rate), eventsBefore(k+1, rate)
			switch {
			case to <= from:
			case e.single:
				for i := from; i < to; i++ {
					jobs <- batchJob{index: i, from: i, to: i + 1}
				}
			default:
				jobs <- batchJob{index: k, from: from, to: to}
			}
		}
	}()
	log, err := e.publish(ctx, jobs, slots, publishers)
	if err == nil && log.events() != events {
		err = fmt.Errorf("%d of %d events published", log.events(), events)
	}
	if sending := log.lastSent.Sub(log.first) + steadyTick; err == nil && float64(events)/sending.Seconds() < 0.95*rate {
		log.behind = fmt.Sprintf("publishers fell behind: sent %s of %s events/s (the server answers too slowly)",
			thousands(int64(float64(events)/sending.Seconds())), thousands(int64(rate)))
	}
	return log, err
}

// eventsBefore is how many events a steady publisher at rate a second has
// sent before tick k.
func eventsBefore(k int, rate float64) int {
	// Nanoseconds first: k*rate*1e7/1e9 is exact for whole rates, where
	// k*rate*0.01 is not (0.01 has no exact binary form).
	return int(math.Floor(float64(k) * rate * float64(steadyTick) / float64(time.Second)))
}

// publish runs publishers goroutines over jobs; slots is the largest job
// index plus one. The first failure stops every publisher.
func (e *benchEnv) publish(ctx context.Context, jobs <-chan batchJob, slots, publishers int) (publishLog, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make([]publishedBatch, slots)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		total    int
	)
	for range publishers {
		wg.Go(func() {
			var body []byte
			for j := range jobs {
				if ctx.Err() != nil {
					return
				}
				if e.single {
					body = e.appendEvent(body[:0], j.from)
				} else {
					body = e.appendBatch(body[:0], j.from, j.to)
				}
				b, deliveries, err := e.publishJob(ctx, body, j)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				batches[j.index], total = b, total+deliveries
				mu.Unlock()
				if err != nil {
					cancel()
					return
				}
				e.published.Add(int64(len(b.ids)))
			}
		})
	}
	wg.Wait()
	log := publishLog{deliveries: total, last: time.Now()}
	for _, b := range batches {
		if b.ids == nil {
			continue
		}
		log.batches = append(log.batches, b)
		if log.first.IsZero() || b.sent.Before(log.first) {
			log.first = b.sent
		}
		if b.sent.After(log.lastSent) {
			log.lastSent = b.sent
		}
	}
	return log, firstErr
}

// publishJob sends one batch body (or, when e.single, one event's) and
// returns what the server answered: the batch's event ids and how many
// deliveries it created.
func (e *benchEnv) publishJob(ctx context.Context, body []byte, j batchJob) (publishedBatch, int, error) {
	sent := time.Now()
	var res []client.PublishResult
	var err error
	if e.single {
		var r *client.PublishResult
		if r, err = e.srv.api.admin.PublishEventJSON(ctx, body); err == nil {
			res = []client.PublishResult{*r}
		}
	} else {
		res, err = e.srv.api.admin.PublishBatchJSON(ctx, body)
	}
	took := time.Since(sent)
	if err == nil && len(res) != j.to-j.from {
		err = fmt.Errorf("batch publish answered %d results for %d events", len(res), j.to-j.from)
	}
	if err != nil {
		return publishedBatch{}, 0, fmt.Errorf("publishing: %w", err)
	}
	b, deliveries := publishedBatch{sent: sent, took: took, ids: make([]string, len(res))}, 0
	for i, r := range res {
		b.ids[i] = r.EventID
		deliveries += r.Deliveries
	}
	return b, deliveries, nil
}

// appendBatch appends the batch publish body of events [from, to).
func (e *benchEnv) appendBatch(dst []byte, from, to int) []byte {
	dst = append(dst, `{"events":[`...)
	for i := from; i < to; i++ {
		if i > from {
			dst = append(dst, ',')
		}
		dst = e.appendEvent(dst, i)
	}
	return append(dst, "]}"...)
}

// appendEvent appends event i, the body of a single publish: it goes to
// account i mod len(accounts), as task bench-<i>.
func (e *benchEnv) appendEvent(dst []byte, i int) []byte {
	dst = append(dst, `{"account_id":`...)
	dst = strconv.AppendInt(dst, e.accounts[i%len(e.accounts)], 10)
	dst = append(dst, `,"event":"job.completed","task_id":"`...)
	dst = append(dst, benchTaskID(i)...)
	dst = append(dst, `","task_type":"image","data":`...)
	dst = benchData(dst, i)
	return append(dst, '}')
}

// benchTaskID is the task id of event i; unique within a run, so the
// default idempotency key never folds two events.
func benchTaskID(i int) string { return "bench-" + strconv.Itoa(i) }

// benchData appends the job data of event i.
func benchData(dst []byte, i int) []byte {
	dst = append(dst, `{"url":"https://cdn.example.com/`...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	return append(dst, `.png","credits_charged":6}`...)
}
