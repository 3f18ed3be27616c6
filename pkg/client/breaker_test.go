package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"

	"github.com/kitshop/kitshop/pkg/errs"
)

func TestBreakerEvent(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	live := context.Background()
	failed := errors.New("connection refused")
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want string
	}{
		{"answered", live, nil, "success"},
		{"failed", live, failed, "failure"},
		{"own budget ran out", live, context.DeadlineExceeded, "timeout"},
		{"caller went away", canceled, context.Canceled, "context_canceled"},
		{"caller's deadline", expired, context.DeadlineExceeded, "timeout"},
		{"caller went away while failing", canceled, failed, "context_canceled"},
		{"shed by the service", live, &upstreamError{status: 503, err: errs.ErrOverloaded}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := event(tt.ctx, tt.err); got != tt.want {
				t.Errorf("event = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBreakerConcurrency: the call over MaxConcurrent in flight is rejected at once,
// without running, and a slot is free again once a call ends.
func TestBreakerConcurrency(t *testing.T) {
	name := "breakertest→concurrency-" + t.Name()
	hystrix.ConfigureCommand(name, hystrix.CommandConfig{MaxConcurrentRequests: 2, RequestVolumeThreshold: 1000})
	b := breakerFor(name, 2)
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			done <- b.do(context.Background(), func(context.Context) error {
				started <- struct{}{}
				<-release
				return nil
			})
		}()
	}
	<-started
	<-started
	ran := false
	err := b.do(context.Background(), func(context.Context) error { ran = true; return nil })
	if !errors.Is(err, hystrix.ErrMaxConcurrency) || ran {
		t.Fatalf("third call: err %v, ran %v; want ErrMaxConcurrency without running", err, ran)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("held call: %v", err)
		}
	}
	if err := b.do(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("after the slots freed: %v", err)
	}
}

// TestBreakerOwnSpike: calls refused by the caller's own concurrency cap do not open
// the circuit (hystrix would count them as errors).
func TestBreakerOwnSpike(t *testing.T) {
	name := "breakertest→spike-" + t.Name()
	hystrix.ConfigureCommand(name, hystrix.CommandConfig{MaxConcurrentRequests: 1, RequestVolumeThreshold: 5, ErrorPercentThreshold: 50, SleepWindow: 60000})
	b := breakerFor(name, 1)
	release := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- b.do(context.Background(), func(context.Context) error { <-release; return nil })
	}()
	for len(b.slots) == 0 {
		time.Sleep(time.Millisecond)
	}
	for range 20 {
		if err := b.do(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, hystrix.ErrMaxConcurrency) {
			t.Fatalf("err = %v, want ErrMaxConcurrency", err)
		}
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // hystrix folds reports in a goroutine of its own
	if b.circuit.IsOpen() {
		t.Fatal("the caller's own rejections opened the circuit")
	}
}

// TestBreakerOpens: failures open the circuit, which then answers ErrCircuitOpen
// without running the call; the caller's own cancellations never do.
func TestBreakerOpens(t *testing.T) {
	tests := []struct {
		name     string
		ctx      func() context.Context
		err      error
		wantOpen bool
	}{
		{"failures", context.Background, errors.New("503"), true},
		{"timeouts", context.Background, context.DeadlineExceeded, true},
		{"the caller's deadline passing", func() context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			_ = cancel // ended already
			return ctx
		}, context.DeadlineExceeded, true},
		{"caller cancellations", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled, false},
		{"sheds", context.Background, &upstreamError{status: 503, err: errs.ErrOverloaded.WithMessage("busy")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "breakertest→opens-" + t.Name()
			hystrix.ConfigureCommand(name, hystrix.CommandConfig{
				MaxConcurrentRequests: 10, RequestVolumeThreshold: 5, ErrorPercentThreshold: 50, SleepWindow: 60000,
			})
			b := breakerFor(name, 10)
			for range 10 {
				_ = b.do(tt.ctx(), func(context.Context) error { return tt.err })
			}
			// hystrix folds reported events into its window in a goroutine of its own.
			deadline := time.Now().Add(2 * time.Second)
			for !b.circuit.IsOpen() && tt.wantOpen && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if !tt.wantOpen {
				time.Sleep(200 * time.Millisecond)
			}
			if open := b.circuit.IsOpen(); open != tt.wantOpen {
				t.Fatalf("open = %v, want %v", open, tt.wantOpen)
			}
			if !tt.wantOpen {
				return
			}
			ran := false
			err := b.do(context.Background(), func(context.Context) error { ran = true; return nil })
			if !errors.Is(err, hystrix.ErrCircuitOpen) || ran {
				t.Fatalf("open circuit: err %v, ran %v", err, ran)
			}
		})
	}
}

// TestBreakerSharedByName: Services built for the same caller→service pair share one
// concurrency cap, as they share hystrix's circuit.
func TestBreakerSharedByName(t *testing.T) {
	name := "breakertest→shared-" + t.Name()
	a, b := breakerFor(name, 3), breakerFor(name, 50)
	if a != b || cap(a.slots) != 3 {
		t.Fatalf("two breakers (%p, %p) or cap %d for one circuit", a, b, cap(a.slots))
	}
	if c := breakerFor(name+"-other", 4); c == a {
		t.Fatal("another circuit shares the breaker")
	}
}

// TestBreakerPanic: a call that panics gives its slot back.
func TestBreakerPanic(t *testing.T) {
	name := "breakertest→panic-" + t.Name()
	hystrix.ConfigureCommand(name, hystrix.CommandConfig{MaxConcurrentRequests: 1, RequestVolumeThreshold: 1000})
	b := breakerFor(name, 1)
	func() {
		defer func() { _ = recover() }()
		_ = b.do(context.Background(), func(context.Context) error { panic("boom") })
	}()
	if err := b.do(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("after a panic: %v", err)
	}
}
