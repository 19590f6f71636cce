package testsignal_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook/internal/testsignal"
)

func TestZeroSignalIsANoOp(t *testing.T) {
	var s testsignal.Signal
	for range 3 {
		s.Notify() // must neither block nor panic
	}
	if n := testing.AllocsPerRun(100, s.Notify); n != 0 {
		t.Fatalf("Notify off allocates %v times", n)
	}
}

func TestAwaitSeesNoticesSentWhileItChecks(t *testing.T) {
	var s testsignal.Signal
	s.Init()
	var n atomic.Int64
	go func() {
		for range 100 {
			n.Add(1)
			s.Notify()
		}
	}()
	if !s.Await(10*time.Second, func() bool { return n.Load() == 100 }) {
		t.Fatalf("Await gave up at %d of 100", n.Load())
	}
}

func TestAwaitTimesOut(t *testing.T) {
	var s testsignal.Signal
	s.Init()
	if s.Await(10*time.Millisecond, func() bool { return false }) {
		t.Fatal("Await reported a condition that never held")
	}
}
