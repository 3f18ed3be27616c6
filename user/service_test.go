package user

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/testenv"
)

type testEnv struct {
	svc       Service
	store     Store
	keys      *Keyring
	keyFile   string
	passwords *Passwords
	clock     *clock
	verifier  auth.Verifier
	logs      *testenv.SyncBuffer
}

// newTestEnv is the service on a memory store with fast argon2 parameters, a keyring
// in a temporary file, and throttles of perEmail and perAddr failures a minute.
func newTestEnv(t testing.TB, params Argon2Params, perEmail, perAddr int) *testEnv {
	t.Helper()
	c := &clock{t: time.Now()}
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	keys, err := OpenKeyring(keyFile, auth.DefaultIssuer, auth.DefaultAudience, 15*time.Minute, c.now)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{
		store:     NewMemoryStore(),
		keys:      keys,
		keyFile:   keyFile,
		passwords: newTestPasswords(t, params),
		clock:     c,
		verifier:  auth.NewVerifier(keys, auth.DefaultIssuer, auth.DefaultAudience, 15*time.Minute),
		logs:      &testenv.SyncBuffer{},
	}
	e.svc = NewService(e.store, Options{
		Passwords:     e.passwords,
		Keys:          keys,
		EmailThrottle: NewThrottle(perEmail, time.Minute, c.now),
		AddrThrottle:  NewThrottle(perAddr, time.Minute, c.now),
		Logger:        log.NewJSONLogger(e.logs),
		Now:           c.now,
	})
	return e
}

func (e *testEnv) register(t testing.TB, email, password string) User {
	t.Helper()
	u, err := e.svc.Register(context.Background(), Registration{Email: email, Password: password, Name: "Ada"})
	if err != nil {
		t.Fatalf("register %s: %v", email, err)
	}
	return u
}

func TestRegisterValidation(t *testing.T) {
	e := newTestEnv(t, fastArgon2, 10, 10)
	e.register(t, "taken@example.com", "correct horse")
	tests := []struct {
		name    string
		r       Registration
		want    error
		wantKey string // the stored email when accepted
	}{
		{"valid", Registration{"ada@example.com", "correct horse", "Ada"}, nil, "ada@example.com"},
		{"email trimmed and lower-cased", Registration{"  Bob@Example.COM\t", "correct horse", "Bob"}, nil, "bob@example.com"},
		{"email plus tag", Registration{"c+shop@example.co.uk", "correct horse", "C"}, nil, "c+shop@example.co.uk"},
		{"taken", Registration{"taken@example.com", "correct horse", "T"}, ErrEmailTaken, ""},
		{"taken in another case", Registration{"TAKEN@example.com", "correct horse", "T"}, ErrEmailTaken, ""},
		{"empty email", Registration{"", "correct horse", "X"}, ErrInvalidEmail, ""},
		{"no at", Registration{"ada.example.com", "correct horse", "X"}, ErrInvalidEmail, ""},
		{"no local part", Registration{"@example.com", "correct horse", "X"}, ErrInvalidEmail, ""},
		{"no domain", Registration{"ada@", "correct horse", "X"}, ErrInvalidEmail, ""},
		{"domain without dot", Registration{"ada@localhost", "correct horse", "X"}, ErrInvalidEmail, ""},
		{"display name", Registration{"Ada <ada2@example.com>", "correct horse", "X"}, ErrInvalidEmail, ""},
		{"two addresses", Registration{"a@example.com, b@example.com", "correct horse", "X"}, ErrInvalidEmail, ""},
		{"space inside", Registration{"a da@example.com", "correct horse", "X"}, ErrInvalidEmail, ""},
		{"oversize email", Registration{strings.Repeat("a", 250) + "@example.com", "correct horse", "X"}, ErrInvalidEmail, ""},
		{"password 7 chars", Registration{"p7@example.com", "1234567", "X"}, ErrInvalidPassword, ""},
		{"password 8 chars", Registration{"p8@example.com", "12345678", "X"}, nil, "p8@example.com"},
		{"password 8 multi-byte chars", Registration{"pmb@example.com", "éééééééé", "X"}, nil, "pmb@example.com"},
		{"password 128 chars", Registration{"p128@example.com", strings.Repeat("p", 128), "X"}, nil, "p128@example.com"},
		{"password 129 chars", Registration{"p129@example.com", strings.Repeat("p", 129), "X"}, ErrInvalidPassword, ""},
		{"oversize password", Registration{"pbig@example.com", strings.Repeat("p", 100000), "X"}, ErrInvalidPassword, ""},
		{"empty name", Registration{"n0@example.com", "correct horse", ""}, ErrInvalidName, ""},
		{"blank name", Registration{"nb@example.com", "correct horse", "   "}, ErrInvalidName, ""},
		{"name 100 chars", Registration{"n100@example.com", "correct horse", strings.Repeat("ß", 100)}, nil, "n100@example.com"},
		{"name 101 chars", Registration{"n101@example.com", "correct horse", strings.Repeat("n", 101)}, ErrInvalidName, ""},
		{"name not UTF-8", Registration{"nu@example.com", "correct horse", "\xff\xfe"}, ErrInvalidName, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := e.svc.Register(context.Background(), tt.r)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				if e := errs.From(err); e.Kind.Status() >= 500 {
					t.Fatalf("bad input answered %d", e.Kind.Status())
				}
				return
			}
			if u.Email != tt.wantKey || u.Role != auth.RoleCustomer || u.ID == "" || u.CreatedAt.IsZero() {
				t.Fatalf("user = %+v", u)
			}
			acc, err := e.store.ByEmail(context.Background(), tt.wantKey)
			if err != nil || acc.PasswordHash == tt.r.Password || !strings.HasPrefix(acc.PasswordHash, "$argon2id$") {
				t.Fatalf("stored account: %+v, %v", acc, err)
			}
		})
	}
}

func TestLogin(t *testing.T) {
	e := newTestEnv(t, fastArgon2, 100, 100)
	u := e.register(t, "ada@example.com", "correct horse")
	ctx := context.Background()

	tests := []struct {
		name, email, password string
		want                  error
	}{
		{"right password", "ada@example.com", "correct horse", nil},
		{"email in another case, with spaces", " ADA@example.com ", "correct horse", nil},
		{"wrong password", "ada@example.com", "correct horsE", ErrInvalidCredentials},
		{"unknown email", "bob@example.com", "correct horse", ErrInvalidCredentials},
		{"malformed email", "ada", "correct horse", ErrInvalidEmail},
		{"empty password", "ada@example.com", "", ErrInvalidPassword},
		{"oversize password", "ada@example.com", strings.Repeat("x", 129), ErrInvalidPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := e.svc.Login(ctx, tt.email, tt.password)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.ExpiresIn != 15*time.Minute {
				t.Fatalf("expires in %v", tok.ExpiresIn)
			}
			caller, err := e.verifier.Verify(ctx, tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if want := (auth.Caller{UserID: u.ID, Email: u.Email, Role: auth.RoleCustomer}); caller != want {
				t.Fatalf("caller = %+v, want %+v", caller, want)
			}
			me, err := e.svc.Me(auth.NewContext(ctx, caller))
			if err != nil || me != u {
				t.Fatalf("Me = %+v, %v; want %+v", me, err, u)
			}
		})
	}
	if strings.Contains(e.logs.String(), "correct horse") || strings.Contains(e.logs.String(), "$argon2id$") {
		t.Fatalf("logs hold a password or a hash:\n%s", e.logs)
	}
}

// TestLoginUnknownEmailHashes shows that a login for an unknown email does the argon2
// work of a wrong password: with the only hashing slot taken, it waits for it like a
// real check would, instead of answering at once.
func TestLoginUnknownEmailHashes(t *testing.T) {
	e := newTestEnv(t, fastArgon2, 100, 100)
	e.passwords.slots = make(chan struct{}, 1)
	e.passwords.slots <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.svc.Login(ctx, "nobody@example.com", "whatever1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unknown email with hashing blocked: err = %v, want a wait for argon2", err)
	}
}

func TestLoginThrottle(t *testing.T) {
	e := newTestEnv(t, fastArgon2, 3, 5)
	e.register(t, "ada@example.com", "correct horse")
	e.register(t, "bob@example.com", "correct horse")
	fromA := WithClientAddr(context.Background(), "192.0.2.1")
	fromB := WithClientAddr(context.Background(), "192.0.2.2")

	for range 3 {
		if _, err := e.svc.Login(fromA, "ada@example.com", "wrong password"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	_, err := e.svc.Login(fromB, "ada@example.com", "correct horse")
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("4th attempt on the email, from another address: err = %v, want ErrRateLimited", err)
	}
	if s := err.(errs.RetryAfter).RetryAfterSeconds(); s != 20 {
		t.Fatalf("Retry-After = %d, want 20", s)
	}
	if _, err := e.svc.Login(fromA, "bob@example.com", "correct horse"); err != nil {
		t.Fatalf("another email from the same address: %v", err)
	}
	// The address limit counts failures across emails.
	for range 2 {
		if _, err := e.svc.Login(fromA, "bob@example.com", "wrong password"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.Login(fromA, "bob@example.com", "correct horse"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("6th failure from the address: err = %v, want ErrRateLimited", err)
	}
	// Unknown emails count too, so guessing accounts is throttled as well.
	for range 3 {
		_, _ = e.svc.Login(fromB, "ghost@example.com", "wrong password")
	}
	if _, err := e.svc.Login(fromB, "ghost@example.com", "wrong password"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("unknown email after 3 failures: err = %v", err)
	}
	e.clock.advance(20 * time.Second)
	if _, err := e.svc.Login(fromB, "ada@example.com", "correct horse"); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
}

// TestLoginThrottleConcurrent sends many wrong passwords at once, for one email from
// many addresses (distributed guessing) and from one address for many emails: each
// attempt spends its budget before argon2 runs, so no more than the budget are checked
// and the rest are refused with 429, however many arrive together.
func TestLoginThrottleConcurrent(t *testing.T) {
	const budget, attempts = 10, 40
	tests := []struct {
		name              string
		perEmail, perAddr int
		email, addr       func(i int) string
	}{
		{"one email, many addresses", budget, 1000,
			func(int) string { return "ada@example.com" },
			func(i int) string { return fmt.Sprintf("192.0.2.%d", i) }},
		{"one address, many emails", 1000, budget,
			func(i int) string { return fmt.Sprintf("guess%d@example.com", i) },
			func(int) string { return "198.51.100.1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, fastArgon2, tt.perEmail, tt.perAddr)
			e.register(t, "ada@example.com", "correct horse")
			var unauthorized, limited atomic.Int32
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range attempts {
				wg.Go(func() {
					ctx := WithClientAddr(context.Background(), tt.addr(i))
					<-start
					_, err := e.svc.Login(ctx, tt.email(i), "wrong password")
					switch {
					case errors.Is(err, ErrInvalidCredentials):
						unauthorized.Add(1)
					case errors.Is(err, ErrRateLimited):
						limited.Add(1)
					default:
						t.Errorf("attempt %d: %v", i, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if u, l := unauthorized.Load(), limited.Load(); u != budget || l != attempts-budget {
				t.Fatalf("%d wrong passwords at once: %d checked (401), %d refused (429); want %d and %d",
					attempts, u, l, budget, attempts-budget)
			}
		})
	}
}

// TestLoginThrottleSharedByInstances: two instances of the user service on one
// database spend one budget per email: 40 wrong passwords at once, half to each, are
// 10 checks, not 10 per instance.
func TestLoginThrottleSharedByInstances(t *testing.T) {
	const budget, attempts = 10, 40
	db := testenv.Postgres(t, Migrations())
	e := newTestEnv(t, fastArgon2, budget, 1000)
	store := NewPostgresStore(db)
	if _, err := createAccount(context.Background(), store, e.passwords, "ada@example.com", "Ada", "correct horse", auth.RoleCustomer, t0); err != nil {
		t.Fatal(err)
	}
	var instances []Service
	for range 2 {
		instances = append(instances, NewService(store, Options{
			Passwords: e.passwords, Keys: e.keys, Logger: log.NewNopLogger(), Now: e.clock.now,
			EmailThrottle: NewPostgresThrottle(db, "email", budget, time.Minute, e.clock.now),
			AddrThrottle:  NewPostgresThrottle(db, "addr", 1000, time.Minute, e.clock.now),
		}))
	}
	var unauthorized, limited atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Go(func() {
			ctx := WithClientAddr(context.Background(), fmt.Sprintf("192.0.2.%d", i))
			<-start
			_, err := instances[i%2].Login(ctx, "ada@example.com", "wrong password")
			switch {
			case errors.Is(err, ErrInvalidCredentials):
				unauthorized.Add(1)
			case errors.Is(err, ErrRateLimited):
				limited.Add(1)
			default:
				t.Errorf("attempt %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if u, l := unauthorized.Load(), limited.Load(); u != budget || l != attempts-budget {
		t.Fatalf("%d wrong passwords at once on 2 instances: %d checked (401), %d refused (429); want %d and %d",
			attempts, u, l, budget, attempts-budget)
	}
}

// TestLoginSuccessGivesBackItsAttempt: a login takes an attempt before the check and
// returns it when the password is right, so successes never use up the budget.
func TestLoginSuccessGivesBackItsAttempt(t *testing.T) {
	e := newTestEnv(t, fastArgon2, 3, 3)
	e.register(t, "ada@example.com", "correct horse")
	ctx := WithClientAddr(context.Background(), "192.0.2.1")
	for i := range 20 {
		if _, err := e.svc.Login(ctx, "ada@example.com", "correct horse"); err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
	}
	for i := range 3 {
		if _, err := e.svc.Login(ctx, "ada@example.com", "wrong password"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d after 20 successes: %v, want 401", i+1, err)
		}
	}
	if _, err := e.svc.Login(ctx, "ada@example.com", "correct horse"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("after 3 failures: %v, want 429", err)
	}
}

func TestLoginRaisesWeakerHashes(t *testing.T) {
	e := newTestEnv(t, fastArgon2, 10, 10)
	u := e.register(t, "ada@example.com", "correct horse")
	raised := fastArgon2
	raised.Time = 3
	svc := NewService(e.store, Options{
		Passwords: newTestPasswords(t, raised), Keys: e.keys,
		EmailThrottle: NewThrottle(10, time.Minute, e.clock.now), AddrThrottle: NewThrottle(10, time.Minute, e.clock.now),
		Logger: log.NewNopLogger(), Now: e.clock.now,
	})
	if _, err := svc.Login(context.Background(), "ada@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	acc, _ := e.store.ByID(context.Background(), u.ID)
	if !strings.Contains(acc.PasswordHash, "$m=64,t=3,p=1$") {
		t.Fatalf("hash after login = %q, want the raised parameters", acc.PasswordHash)
	}
	if _, err := svc.Login(context.Background(), "ada@example.com", "correct horse"); err != nil {
		t.Fatalf("login with the raised hash: %v", err)
	}
}

func TestMe(t *testing.T) {
	e := newTestEnv(t, fastArgon2, 10, 10)
	u := e.register(t, "ada@example.com", "correct horse")
	ctx := context.Background()
	tests := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"caller", auth.NewContext(ctx, auth.Caller{UserID: u.ID, Role: auth.RoleCustomer}), nil},
		{"no caller", ctx, auth.ErrNoToken},
		{"deleted user", auth.NewContext(ctx, auth.Caller{UserID: "gone", Role: auth.RoleCustomer}), ErrUserNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.svc.Me(tt.ctx)
			if !errors.Is(err, tt.want) || (tt.want == nil && got != u) {
				t.Fatalf("Me = %+v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestEnsureAdmin(t *testing.T) {
	e := newTestEnv(t, fastArgon2, 10, 10)
	ctx := context.Background()
	for range 2 {
		if err := EnsureAdmin(ctx, e.store, e.passwords, " Admin@Example.com", "admin password", e.clock.now()); err != nil {
			t.Fatal(err)
		}
	}
	acc, err := e.store.ByEmail(ctx, "admin@example.com")
	if err != nil || acc.Role != auth.RoleAdmin {
		t.Fatalf("admin account: %+v, %v", acc, err)
	}
	tok, err := e.svc.Login(ctx, "admin@example.com", "admin password")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := e.verifier.Verify(ctx, tok.AccessToken); err != nil || c.Role != auth.RoleAdmin {
		t.Fatalf("admin token: %+v, %v", c, err)
	}

	// A new configured password replaces the old one: the old stops working.
	if err := EnsureAdmin(ctx, e.store, e.passwords, "admin@example.com", "a new admin password", e.clock.now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Login(ctx, "admin@example.com", "admin password"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("old password after the change: %v", err)
	}
	if _, err := e.svc.Login(ctx, "admin@example.com", "a new admin password"); err != nil {
		t.Fatalf("new password: %v", err)
	}

	e.register(t, "mallory@example.com", "correct horse")
	tests := []struct {
		name, email, password string
		want                  error
	}{
		{"email of a customer", "mallory@example.com", "admin password", ErrEmailTaken},
		{"malformed email", "admin", "admin password", ErrInvalidEmail},
		{"short password", "root@example.com", "short", ErrInvalidPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := EnsureAdmin(ctx, e.store, e.passwords, tt.email, tt.password, e.clock.now()); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if acc, _ := e.store.ByEmail(ctx, "mallory@example.com"); acc.Role != auth.RoleCustomer {
		t.Fatal("a customer was promoted")
	}
}

// BenchmarkLogin measures successful logins with the production argon2id parameters
// (m=19456 KiB, t=2, p=1), one hash per login, as many at once as there are cores.
func BenchmarkLogin(b *testing.B) {
	e := newTestEnv(b, DefaultArgon2, 0, 0)
	e.register(b, "ada@example.com", "correct horse")
	benchmarkLogins(b, e, "ada@example.com")
}

// BenchmarkLoginUnknownEmail is the same for an email without an account: it should
// cost what a login costs, so timing does not reveal which emails have accounts.
func BenchmarkLoginUnknownEmail(b *testing.B) {
	e := newTestEnv(b, DefaultArgon2, 0, 0)
	benchmarkLogins(b, e, "nobody@example.com")
}

func benchmarkLogins(b *testing.B, e *testEnv, email string) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, err := e.svc.Login(ctx, email, "correct horse")
			if err != nil && !errors.Is(err, ErrInvalidCredentials) {
				b.Fatal(err)
			}
		}
	})
}
