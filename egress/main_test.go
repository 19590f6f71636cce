package egress

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeResolver answers from a table. A host with several answers gives them
// in turn, repeating the last, which is how the tests model DNS rebinding.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	calls   map[string]int
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{answers: map[string][][]netip.Addr{}, calls: map[string]int{}}
}

// set makes host answer each of answers in turn, then repeat the last. An
// answer is a list of address literals.
func (f *fakeResolver) set(host string, answers ...[]string) *fakeResolver {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ans := range answers {
		var addrs []netip.Addr
		for _, s := range ans {
			addrs = append(addrs, netip.MustParseAddr(s))
		}
		f.answers[host] = append(f.answers[host], addrs)
	}
	return f
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.calls[host]
	f.calls[host]++
	ans, ok := f.answers[host]
	if !ok {
		return nil, fmt.Errorf("lookup %s: no such host", host)
	}
	return ans[min(i, len(ans)-1)], nil
}

func (f *fakeResolver) callsFor(host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[host]
}
