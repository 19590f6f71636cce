package api

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/sqlite"
)

// holdingStore is the real store whose first PublishEvents call waits
// until the test releases it, so that the publishes sent meanwhile queue
// for the next turn. It records the accounts of every call's events, and
// can fail every later call.
type holdingStore struct {
	store.Store
	held    chan struct{} // receives once the first call is inside
	release chan struct{} // closed by the test
	fail    error         // when set, every call after the first fails with it
	panics  bool          // when set, every call after the first panics

	mu    sync.Mutex
	calls [][]int64
}

func (s *holdingStore) PublishEvents(ctx context.Context, events []store.PublishEventParams) ([]store.PublishResult, error) {
	accounts := make([]int64, len(events))
	for i, e := range events {
		accounts[i] = e.AccountID
	}
	s.mu.Lock()
	s.calls = append(s.calls, accounts)
	n := len(s.calls)
	s.mu.Unlock()
	if n == 1 {
		s.held <- struct{}{}
		<-s.release
	} else if s.panics {
		panic("store broke")
	} else if s.fail != nil {
		return nil, s.fail
	}
	return s.Store.PublishEvents(ctx, events)
}

func (s *holdingStore) callsSoFar() [][]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// groupFixture is a server on a holding store with two accounts of one
// endpoint each.
type groupFixture struct {
	s      *server
	st     *holdingStore
	a1, a2 int64
	first  <-chan publishOutcome // the held publish, once startHeld ran
}

func newGroupFixture(t *testing.T) *groupFixture {
	t.Helper()
	ctx := t.Context()
	real, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "nanohook.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = real.Close() })
	f := &groupFixture{st: &holdingStore{Store: real, held: make(chan struct{}, 1), release: make(chan struct{})}}
	for _, id := range []*int64{&f.a1, &f.a2} {
		_, hash := nanohook.NewAPIKey()
		a, _, err := real.CreateAccount(ctx, store.CreateAccountParams{Name: fmt.Sprintf("group-%p", id), KeyHash: hash, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := real.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: a.ID, URL: "https://example.com/hook",
			Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_group_test", Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
		*id = a.ID
	}
	f.s = newServer(Config{Store: f.st, AdminToken: "t"})
	f.s.groups.queued.Init()
	return f
}

// groupEvent is a job.completed event of account for task, under key.
func groupEvent(account int64, task, key string) store.PublishEventParams {
	now := time.Now()
	return store.PublishEventParams{ID: nanohook.NewEventID(), AccountID: account, Type: nanohook.EventJobCompleted,
		TaskID: task, TaskType: "image", IdempotencyKey: key, Payload: []byte(`{"event":"job.completed"}`),
		OccurredAt: now, Now: now}
}

type publishOutcome struct {
	event store.PublishEventParams
	res   []store.PublishResult
	err   error
}

// publishAsync publishes one event as a request of its own would.
func (f *groupFixture) publishAsync(e store.PublishEventParams) <-chan publishOutcome {
	out := make(chan publishOutcome, 1)
	go func() {
		defer func() {
			// As net/http does for a handler: a panic ends this request only.
			if r := recover(); r != nil {
				out <- publishOutcome{e, nil, fmt.Errorf("panicked: %v", r)}
			}
		}()
		res, err := f.s.publish(context.Background(), []store.PublishEventParams{e}, func(int64) int { return 1 })
		out <- publishOutcome{e, res, err}
	}()
	return out
}

// waitQueued waits until n publishes wait for a turn.
func (f *groupFixture) waitQueued(t *testing.T, n int) {
	t.Helper()
	var got int
	if !f.s.groups.queued.Await(10*time.Second, func() bool {
		f.s.groups.mu.Lock()
		defer f.s.groups.mu.Unlock()
		got = len(f.s.groups.pending)
		return got == n
	}) {
		t.Fatalf("%d publishes queued, want %d", got, n)
	}
}

// startHeld publishes one event whose commit holds the turn, and then
// the given events, each its own request, and waits until they are all
// queued behind it; releaseHeld lets the held commit go on.
func (f *groupFixture) startHeld(t *testing.T, events ...store.PublishEventParams) (rest []<-chan publishOutcome) {
	t.Helper()
	f.first = f.publishAsync(groupEvent(f.a1, "held", "held"))
	select {
	case <-f.st.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the first publish never reached the store")
	}
	for _, e := range events {
		rest = append(rest, f.publishAsync(e))
	}
	f.waitQueued(t, len(events))
	return rest
}

// releaseHeld lets the held publish commit and checks that it was
// answered with its own event, alone.
func (f *groupFixture) releaseHeld(t *testing.T) {
	t.Helper()
	close(f.st.release)
	if o := <-f.first; o.err != nil || len(o.res) != 1 || o.res[0].EventID != o.event.ID {
		t.Fatalf("the held publish: %+v, %v", o.res, o.err)
	}
}

// TestPublishGroupsShareOneCommit: publishes that wait while another
// commits are written by the next turn in one call (one transaction),
// each answered with its own event's result; two of one account with one
// idempotency key keep exactly one event between them, as two requests
// one after the other would.
func TestPublishGroupsShareOneCommit(t *testing.T) {
	f := newGroupFixture(t)
	events := []store.PublishEventParams{
		groupEvent(f.a1, "t1", "k1"), groupEvent(f.a2, "t2", "k2"),
		groupEvent(f.a2, "t3", "same"), groupEvent(f.a2, "t4", "same"),
	}
	rest := f.startHeld(t, events...)
	f.releaseHeld(t)
	got := map[string]publishOutcome{}
	for _, ch := range rest {
		o := <-ch
		if o.err != nil || len(o.res) != 1 {
			t.Fatalf("publish of %s: %+v, %v", o.event.TaskID, o.res, o.err)
		}
		got[o.event.TaskID] = o
	}
	calls := f.st.callsSoFar()
	if len(calls) != 2 || len(calls[1]) != len(events) {
		t.Fatalf("store calls %v: want the held one, then one with all %d queued events", calls, len(events))
	}
	for _, task := range []string{"t1", "t2"} {
		if o := got[task]; o.res[0].EventID != o.event.ID || o.res[0].Duplicate || o.res[0].Deliveries != 1 {
			t.Errorf("%s: result %+v, want its own event %s with 1 delivery", task, o.res[0], o.event.ID)
		}
	}
	t3, t4 := got["t3"].res[0], got["t4"].res[0]
	if t3.Duplicate == t4.Duplicate || t3.EventID != t4.EventID {
		t.Errorf("one key twice in a group: %+v and %+v, want one new event and one duplicate of it", t3, t4)
	}
	for _, task := range []string{"t1", "t2", "t3", "t4"} {
		o := got[task]
		if _, err := f.st.GetEvent(t.Context(), o.event.AccountID, o.res[0].EventID); err != nil {
			t.Errorf("%s: event %s not stored: %v", task, o.res[0].EventID, err)
		}
	}
}

// TestPublishGroupFailureAnswersEveryMember: when a group's commit fails,
// every request in it gets the error and nothing of theirs is stored.
func TestPublishGroupFailureAnswersEveryMember(t *testing.T) {
	f := newGroupFixture(t)
	f.st.fail = fmt.Errorf("disk gone: %w", store.ErrUnavailable)
	events := []store.PublishEventParams{groupEvent(f.a1, "f1", "f1"), groupEvent(f.a2, "f2", "f2"), groupEvent(f.a2, "f3", "f3")}
	rest := f.startHeld(t, events...)
	f.releaseHeld(t)
	for _, ch := range rest {
		o := <-ch
		if !errors.Is(o.err, store.ErrUnavailable) || o.res != nil {
			t.Errorf("publish of %s: %+v, %v; want store.ErrUnavailable and no result", o.event.TaskID, o.res, o.err)
		}
		if _, err := f.st.GetEvent(t.Context(), o.event.AccountID, o.event.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("event of %s: %v, want not stored", o.event.TaskID, err)
		}
	}
	if calls := f.st.callsSoFar(); len(calls) != 2 {
		t.Errorf("store calls %v: want the held one and one for the group", calls)
	}
}

// TestPublishGroupPanicAnswersEveryMember: when the store panics in a
// group's commit, the request holding the turn ends with the panic and
// every other member is answered with store.ErrUnavailable instead of
// waiting forever.
func TestPublishGroupPanicAnswersEveryMember(t *testing.T) {
	f := newGroupFixture(t)
	f.st.panics = true
	events := []store.PublishEventParams{groupEvent(f.a1, "p1", "p1"), groupEvent(f.a2, "p2", "p2"), groupEvent(f.a2, "p3", "p3")}
	rest := f.startHeld(t, events...)
	f.releaseHeld(t)
	panicked := 0
	for _, ch := range rest {
		var o publishOutcome
		select {
		case o = <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("a member of the panicked group was never answered")
		}
		switch {
		case o.err != nil && o.err.Error() == "panicked: store broke":
			panicked++
		case !errors.Is(o.err, store.ErrUnavailable) || o.res != nil:
			t.Errorf("publish of %s: %+v, %v; want store.ErrUnavailable and no result", o.event.TaskID, o.res, o.err)
		}
	}
	if panicked != 1 {
		t.Errorf("%d requests ended with the panic, want 1 (the one holding the turn)", panicked)
	}
	// The turn the panicked commit held was given back: the next publish
	// gets one and commits.
	f.st.panics = false
	select {
	case o := <-f.publishAsync(groupEvent(f.a1, "after", "after")):
		if o.err != nil || len(o.res) != 1 {
			t.Errorf("a publish after the panic: %+v, %v", o.res, o.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no publish commits after a panicked group: its turn was never given back")
	}
}

// TestPublishGroupWithVanishedAccount: an account gone from under a group
// fails only its own request; the group's other members are committed
// one by one.
func TestPublishGroupWithVanishedAccount(t *testing.T) {
	f := newGroupFixture(t)
	const gone = 999_999
	events := []store.PublishEventParams{groupEvent(f.a1, "v1", "v1"), groupEvent(gone, "v2", "v2"), groupEvent(f.a2, "v3", "v3")}
	rest := f.startHeld(t, events...)
	f.releaseHeld(t)
	for _, ch := range rest {
		o := <-ch
		switch {
		case o.event.AccountID == gone:
			if !errors.Is(o.err, store.ErrNotFound) {
				t.Errorf("publish for the missing account: %+v, %v; want store.ErrNotFound", o.res, o.err)
			}
		case o.err != nil || len(o.res) != 1 || o.res[0].EventID != o.event.ID:
			t.Errorf("publish of %s beside the missing account: %+v, %v; want its event stored", o.event.TaskID, o.res, o.err)
		}
	}
	if calls := f.st.callsSoFar(); len(calls) != 1+1+len(events) {
		t.Errorf("store calls %v: want the held one, the group's, then one per member", calls)
	}
}
