// Package user is the accounts service: registration, login with argon2id-hashed
// passwords, and the EdDSA-signed access tokens every other service verifies against
// the public keys it serves at /.well-known/jwks.json.
package user

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/errs"
)

// User is an account as others see it.
type User struct {
	ID        string
	Email     string
	Name      string
	Role      string
	CreatedAt time.Time
}

// Registration is what a new customer gives.
type Registration struct {
	Email    string
	Password string
	Name     string
}

// Token is an access token and how long it lasts.
type Token struct {
	AccessToken string
	ExpiresIn   time.Duration
}

// Limits.
const (
	MinPassword = 8   // characters
	MaxPassword = 128 // characters
	MaxName     = 100 // characters
	MaxEmail    = 254 // bytes, RFC 5321's limit on a path
)

// Domain errors.
var (
	ErrInvalidEmail       = errs.E(errs.Invalid, "invalid_email", "the email is not a valid address of at most 254 characters")
	ErrInvalidPassword    = errs.E(errs.Invalid, "invalid_password", "a password is 8 to 128 characters")
	ErrInvalidName        = errs.E(errs.Invalid, "invalid_name", "a name is 1 to 100 characters")
	ErrEmailTaken         = errs.E(errs.Conflict, "email_taken", "an account with that email exists")
	ErrInvalidCredentials = errs.E(errs.Unauthenticated, "invalid_credentials", "wrong email or password")
	ErrUserNotFound       = errs.E(errs.NotFound, "user_not_found", "no such user")
)

// Service is the user API.
type Service interface {
	// Register creates a customer account.
	Register(ctx context.Context, r Registration) (User, error)
	// Login checks an email and password and issues an access token. Failed attempts
	// are throttled per email and per client address (see WithClientAddr).
	Login(ctx context.Context, email, password string) (Token, error)
	// Me is the account of the caller the context carries (see auth.Authenticated).
	Me(ctx context.Context) (User, error)
	// JWKS is the public keys that verify access tokens.
	JWKS(ctx context.Context) (auth.JWKS, error)
}

// Budget limits login attempts by key (an email, a client address). A login takes an
// attempt before its password is checked and gives it back unless the password was
// wrong, so only failures spend the budget, and attempts sent together cannot outrun
// it (counted once checked, all of them would pass while argon2 ran).
type Budget interface {
	// Take takes an attempt for key and returns zero, or, when key has none left,
	// takes nothing and returns how long until it has one.
	Take(ctx context.Context, key string) (time.Duration, error)
	// Return gives back an attempt Take took.
	Return(ctx context.Context, key string) error
}

// Keys signs tokens and publishes the keys that verify them; *Keyring is the one.
type Keys interface {
	Signer() (*auth.Signer, error)
	JWKS() (auth.JWKS, error)
}

// Options are the service's collaborators besides its store.
type Options struct {
	Passwords *Passwords
	Keys      Keys
	// EmailThrottle and AddrThrottle budget failed logins per email and per client
	// address.
	EmailThrottle Budget
	AddrThrottle  Budget
	Logger        log.Logger
	Now           func() time.Time
}

type service struct {
	store Store
	Options
}

// NewService returns the user service on store.
func NewService(store Store, opts Options) Service {
	return &service{store: store, Options: opts}
}

type clientAddrKey struct{}

// WithClientAddr returns ctx carrying the address of the client a request came from,
// for login throttling.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

func clientAddrFrom(ctx context.Context) string {
	addr, _ := ctx.Value(clientAddrKey{}).(string)
	return addr
}

// NormaliseEmail trims and lower-cases email and checks that it is a bare address.
func NormaliseEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" || len(email) > MaxEmail {
		return "", ErrInvalidEmail
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "", ErrInvalidEmail
	}
	_, domain, _ := strings.Cut(email, "@")
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", ErrInvalidEmail
	}
	return email, nil
}

func validPassword(password string) bool {
	n := utf8.RuneCountInString(password)
	return n >= MinPassword && n <= MaxPassword
}

func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func (s *service) Register(ctx context.Context, r Registration) (User, error) {
	email, err := NormaliseEmail(r.Email)
	if err != nil {
		return User{}, err
	}
	name := strings.TrimSpace(r.Name)
	if name == "" || utf8.RuneCountInString(name) > MaxName || !utf8.ValidString(name) {
		return User{}, ErrInvalidName
	}
	if !validPassword(r.Password) {
		return User{}, ErrInvalidPassword
	}
	return createAccount(ctx, s.store, s.Passwords, email, name, r.Password, auth.RoleCustomer, s.Now())
}

func createAccount(ctx context.Context, store Store, passwords *Passwords, email, name, password, role string, now time.Time) (User, error) {
	hash, err := passwords.Hash(ctx, password)
	if err != nil {
		return User{}, err
	}
	id, err := newID()
	if err != nil {
		return User{}, err
	}
	u := User{ID: id, Email: email, Name: name, Role: role, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	if err := store.Create(ctx, Account{User: u, PasswordHash: hash}); err != nil {
		return User{}, err
	}
	return u, nil
}

func (s *service) Login(ctx context.Context, email, password string) (Token, error) {
	email, err := NormaliseEmail(email)
	if err != nil {
		return Token{}, err
	}
	if password == "" || utf8.RuneCountInString(password) > MaxPassword {
		return Token{}, ErrInvalidPassword
	}
	addr := clientAddrFrom(ctx)
	// The attempt is paid for before argon2 runs and refunded unless the password
	// turns out wrong: guesses sent together all count.
	wait, err := s.takeAttempt(ctx, email, addr)
	if err != nil {
		return Token{}, err
	}
	if wait > 0 {
		return Token{}, rateLimitedError{wait: wait}
	}
	acc, err := s.checkPassword(ctx, email, password)
	if !errors.Is(err, ErrInvalidCredentials) {
		s.returnAttempt(ctx, email, addr)
	}
	if err != nil {
		return Token{}, err
	}

	signer, err := s.Keys.Signer()
	if err != nil {
		_ = level.Warn(s.Logger).Log("msg", "keyring reload failed; signing with the key in memory", "err", err)
	}
	token, _, err := signer.Sign(auth.Caller{UserID: acc.ID, Email: acc.Email, Role: acc.Role}, s.Now())
	if err != nil {
		return Token{}, err
	}
	return Token{AccessToken: token, ExpiresIn: signer.TTL()}, nil
}

// checkPassword returns the account of email when password is its password, and
// ErrInvalidCredentials when it is not or there is no such account.
func (s *service) checkPassword(ctx context.Context, email, password string) (Account, error) {
	acc, err := s.store.ByEmail(ctx, email)
	if errors.Is(err, ErrUserNotFound) {
		// The same argon2 work as a wrong password, so timing does not reveal accounts.
		if err := s.Passwords.CheckDummy(ctx, password); err != nil {
			return Account{}, err
		}
		return Account{}, ErrInvalidCredentials
	}
	if err != nil {
		return Account{}, err
	}
	ok, weaker, err := s.Passwords.Check(ctx, password, acc.PasswordHash)
	if err != nil {
		return Account{}, err
	}
	if !ok {
		return Account{}, ErrInvalidCredentials
	}
	if weaker {
		s.rehash(ctx, acc.ID, password)
	}
	return acc, nil
}

// takeAttempt takes a login attempt from the budgets of email and addr, or takes
// nothing and says how long to wait.
func (s *service) takeAttempt(ctx context.Context, email, addr string) (time.Duration, error) {
	if wait, err := s.EmailThrottle.Take(ctx, email); wait > 0 || err != nil {
		return wait, err
	}
	if addr == "" {
		return 0, nil
	}
	wait, err := s.AddrThrottle.Take(ctx, addr)
	if wait > 0 || err != nil {
		s.giveBack(ctx, s.EmailThrottle, email)
	}
	return wait, err
}

func (s *service) returnAttempt(ctx context.Context, email, addr string) {
	s.giveBack(ctx, s.EmailThrottle, email)
	if addr != "" {
		s.giveBack(ctx, s.AddrThrottle, addr)
	}
}

// giveBack returns an attempt; failing to only leaves it spent, which errs on the safe
// side.
func (s *service) giveBack(ctx context.Context, b Budget, key string) {
	if err := b.Return(context.WithoutCancel(ctx), key); err != nil {
		_ = level.Warn(s.Logger).Log("msg", "returning a login attempt failed", "err", err)
	}
}

// rehash stores a hash with the current argon2 parameters for a user whose hash was
// made with weaker ones. Failing to do so only postpones it to the next login.
func (s *service) rehash(ctx context.Context, id, password string) {
	hash, err := s.Passwords.Hash(ctx, password)
	if err == nil {
		err = s.store.SetPasswordHash(ctx, id, hash)
	}
	if err != nil {
		_ = level.Warn(s.Logger).Log("msg", "raising password hash parameters failed", "user_id", id, "err", err)
	}
}

func (s *service) Me(ctx context.Context) (User, error) {
	caller, ok := auth.CallerFrom(ctx)
	if !ok {
		return User{}, auth.ErrNoToken
	}
	acc, err := s.store.ByID(ctx, caller.UserID)
	if err != nil {
		return User{}, err
	}
	return acc.User, nil
}

func (s *service) JWKS(context.Context) (auth.JWKS, error) {
	set, err := s.Keys.JWKS()
	if err != nil {
		_ = level.Warn(s.Logger).Log("msg", "keyring reload failed; publishing the keys in memory", "err", err)
	}
	return set, nil
}

// knownPasswords are admin passwords anyone can read: the defaults kitshop's own
// deployment files ship (docker-compose.yml, the Kubernetes demo overlay) and the
// first guesses of anyone trying an admin login. Compared after trimming and
// lower-casing.
var knownPasswords = map[string]bool{
	"change-me-admin": true, "kitshop-demo-admin": true, "kitshop-admin": true, "kitshop-demo": true,
	"demo-password": true, "password": true, "password1": true, "password123": true, "changeme": true,
	"change-me": true, "changeit": true, "administrator": true, "admin123": true, "admin1234": true,
	"adminadmin": true, "12345678": true, "123456789": true, "1234567890": true, "qwertyuiop": true,
	"letmein1": true, "iloveyou": true, "welcome1": true, "secret123": true,
}

// KnownPassword reports whether password is one of the publicly known defaults no
// admin account may have outside a demo.
func KnownPassword(password string) bool {
	return knownPasswords[strings.ToLower(strings.TrimSpace(password))]
}

// EnsureAdmin makes sure the admin account email exists with password: it creates
// it, or sets the configured password on an existing admin whose password differs
// (the configuration is what an operator controls; a launcher that made a new password
// must not be locked out by an old database). It is idempotent, and refuses an email
// that belongs to a customer: promoting it would hand the admin role to whoever
// registered that address.
func EnsureAdmin(ctx context.Context, store Store, passwords *Passwords, email, password string, now time.Time) error {
	email, err := NormaliseEmail(email)
	if err != nil {
		return err
	}
	if !validPassword(password) {
		return ErrInvalidPassword
	}
	acc, err := store.ByEmail(ctx, email)
	switch {
	case err == nil && acc.Role == auth.RoleAdmin:
		if ok, _, err := passwords.Check(ctx, password, acc.PasswordHash); err != nil || ok {
			return err
		}
		hash, err := passwords.Hash(ctx, password)
		if err != nil {
			return err
		}
		return store.SetPasswordHash(ctx, acc.ID, hash)
	case err == nil:
		return errs.E(errs.Conflict, "email_taken", "the admin email %s belongs to a %s account", email, acc.Role)
	case !errors.Is(err, ErrUserNotFound):
		return err
	}
	_, err = createAccount(ctx, store, passwords, email, "Administrator", password, auth.RoleAdmin, now)
	if errors.Is(err, ErrEmailTaken) { // another instance created it meanwhile
		return EnsureAdmin(ctx, store, passwords, email, password, now)
	}
	return err
}
