package notification

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/testenv"
)

func TestMemoryStore(t *testing.T) {
	testStore(t, func(*testing.T) Store { return NewMemoryStore() })
}

func TestPostgresStore(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewPostgresStore(testenv.Postgres(t, Migrations())) })
}

func note(i int, user string, at time.Time) Notification {
	return Notification{
		ID: fmt.Sprintf("n%03d", i), UserID: user, OrderID: fmt.Sprintf("o%d", i), EventID: fmt.Sprintf("e%d", i),
		Type: TypeOrderConfirmed, To: user + "@example.com", Subject: "s", Body: "b", SentAt: at,
	}
}

func sendOK(context.Context) error { return nil }

func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

	t.Run("list is own, newest first, limited", func(t *testing.T) {
		s := newStore(t)
		for i := 0; i < 5; i++ {
			if err := s.Insert(ctx, note(i, "alice", base.Add(time.Duration(i)*time.Minute)), sendOK); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Insert(ctx, note(9, "bob", base), sendOK); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListByUser(ctx, "alice", 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 || list[0].ID != "n004" || list[1].ID != "n003" || list[2].ID != "n002" {
			t.Fatalf("list = %+v", list)
		}
		want := note(4, "alice", base.Add(4*time.Minute))
		if list[0] != want {
			t.Fatalf("stored %+v, want %+v", list[0], want)
		}
		if list, err := s.ListByUser(ctx, "carol", 10); err != nil || list == nil || len(list) != 0 {
			t.Fatalf("unknown user: %v, %v (want an empty, non-nil list)", list, err)
		}
	})

	t.Run("duplicate event sends nothing", func(t *testing.T) {
		s := newStore(t)
		if err := s.Insert(ctx, note(1, "alice", base), sendOK); err != nil {
			t.Fatal(err)
		}
		again := note(2, "alice", base)
		again.EventID = "e1"
		called := false
		err := s.Insert(ctx, again, func(context.Context) error { called = true; return nil })
		if !errors.Is(err, ErrDuplicateEvent) || called {
			t.Fatalf("duplicate: err %v, send called %v", err, called)
		}
	})

	t.Run("failed send keeps nothing", func(t *testing.T) {
		s := newStore(t)
		boom := errors.New("smtp down")
		if err := s.Insert(ctx, note(1, "alice", base), func(context.Context) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want %v", err, boom)
		}
		if list, _ := s.ListByUser(ctx, "alice", 10); len(list) != 0 {
			t.Fatalf("kept %+v after a failed send", list)
		}
		if err := s.Insert(ctx, note(1, "alice", base), sendOK); err != nil {
			t.Fatalf("retry after a failed send: %v", err)
		}
	})

	t.Run("concurrent duplicates send once", func(t *testing.T) {
		s := newStore(t)
		var sends, ok, dup atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := note(100+i, "alice", base)
				n.EventID = "same"
				err := s.Insert(ctx, n, func(context.Context) error {
					sends.Add(1)
					time.Sleep(20 * time.Millisecond) // others arrive meanwhile
					return nil
				})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrDuplicateEvent):
					dup.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if sends.Load() != 1 || ok.Load() != 1 || dup.Load() != 7 {
			t.Fatalf("sends %d, inserted %d, duplicates %d; want 1, 1, 7", sends.Load(), ok.Load(), dup.Load())
		}
	})
}
