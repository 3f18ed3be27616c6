package backoff_test

import (
	"context"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/backoff"
)

func TestDelay(t *testing.T) {
	b := backoff.Exponential{Min: 100 * time.Millisecond, Max: time.Second}
	for attempt, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		if d := b.Delay(attempt); d != want {
			t.Errorf("Delay(%d) = %v, want %v", attempt, d, want)
		}
		for i := 0; i < 20; i++ {
			if d := b.Jittered(attempt); d < want/2 || d > want {
				t.Fatalf("Jittered(%d) = %v, want %v..%v", attempt, d, want/2, want)
			}
		}
	}
}

func TestSleep(t *testing.T) {
	if !backoff.Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep did not wait out its pause")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if backoff.Sleep(ctx, time.Hour) {
		t.Error("Sleep outlived its context")
	}
}
