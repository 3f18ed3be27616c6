package testenv_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

// fakeTB is the part of testing.TB the helpers call, recording a failure instead of
// failing the test that runs them. Any other method panics on the nil TB inside.
type fakeTB struct {
	testing.TB
	ctx    context.Context
	failed string
}

func (f *fakeTB) Helper()                  {}
func (f *fakeTB) Context() context.Context { return f.ctx }

// Fatalf ends the goroutine, as testing.T's does, so that nothing after it runs.
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs f with a fakeTB in a goroutine of its own, as the testing package runs
// a test, and returns the message it failed with, "" when it did not.
func failure(t *testing.T, f func(tb testing.TB)) string {
	tb := &fakeTB{ctx: t.Context()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
	}()
	<-done
	return tb.failed
}
