package user

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/testenv"
)

func TestMemoryStore(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewMemoryStore() })
}

func TestPostgresStore(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewPostgresStore(testenv.Postgres(t, Migrations())) })
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 123456000, time.UTC)

func account(id, email string) Account {
	return Account{
		User:         User{ID: id, Email: email, Name: "Name " + id, Role: auth.RoleCustomer, CreatedAt: t0},
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
	}
}

// testStore is the conformance suite every Store implementation must pass.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("create and read", func(t *testing.T) {
		s := newStore(t)
		want := account("u1", "ada@example.com")
		want.Role = auth.RoleAdmin
		if err := s.Create(ctx, want); err != nil {
			t.Fatal(err)
		}
		for name, get := range map[string]func() (Account, error){
			"by id":    func() (Account, error) { return s.ByID(ctx, "u1") },
			"by email": func() (Account, error) { return s.ByEmail(ctx, "ada@example.com") },
		} {
			got, err := get()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got != want {
				t.Fatalf("%s: got %+v, want %+v", name, got, want)
			}
		}
	})

	t.Run("not found", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(ctx, account("u1", "ada@example.com")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ByID(ctx, "u2"); !errors.Is(err, ErrUserNotFound) {
			t.Fatalf("ByID unknown: err = %v", err)
		}
		if _, err := s.ByEmail(ctx, "bob@example.com"); !errors.Is(err, ErrUserNotFound) {
			t.Fatalf("ByEmail unknown: err = %v", err)
		}
		if err := s.SetPasswordHash(ctx, "u2", "x"); !errors.Is(err, ErrUserNotFound) {
			t.Fatalf("SetPasswordHash unknown: err = %v", err)
		}
	})

	t.Run("email unique", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(ctx, account("u1", "ada@example.com")); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, account("u2", "ada@example.com")); !errors.Is(err, ErrEmailTaken) {
			t.Fatalf("second account with the email: err = %v, want ErrEmailTaken", err)
		}
		if _, err := s.ByID(ctx, "u2"); !errors.Is(err, ErrUserNotFound) {
			t.Fatalf("the refused account was stored: %v", err)
		}
	})

	t.Run("concurrent registrations of one email", func(t *testing.T) {
		s := newStore(t)
		var created, taken atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				err := s.Create(ctx, account(fmt.Sprintf("u%d", i), "race@example.com"))
				switch {
				case err == nil:
					created.Add(1)
				case errors.Is(err, ErrEmailTaken):
					taken.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if created.Load() != 1 || taken.Load() != 19 {
			t.Fatalf("created %d, taken %d; want 1 and 19", created.Load(), taken.Load())
		}
	})

	t.Run("set password hash", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(ctx, account("u1", "ada@example.com")); err != nil {
			t.Fatal(err)
		}
		if err := s.SetPasswordHash(ctx, "u1", "new-hash"); err != nil {
			t.Fatal(err)
		}
		got, err := s.ByEmail(ctx, "ada@example.com")
		if err != nil || got.PasswordHash != "new-hash" {
			t.Fatalf("hash = %q, %v", got.PasswordHash, err)
		}
	})
}
