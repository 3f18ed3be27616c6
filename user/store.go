package user

import (
	"context"
)

// Account is a user as stored: the User and their password hash, which never leaves
// the service.
type Account struct {
	User
	PasswordHash string
}

// Store keeps accounts. Emails are unique: Create fails with ErrEmailTaken for an email
// already stored, however concurrent the calls.
type Store interface {
	Create(ctx context.Context, a Account) error
	// ByEmail and ByID fail with ErrUserNotFound.
	ByEmail(ctx context.Context, email string) (Account, error)
	ByID(ctx context.Context, id string) (Account, error)
	// SetPasswordHash replaces a user's hash (to raise its argon2 parameters); it fails
	// with ErrUserNotFound.
	SetPasswordHash(ctx context.Context, id, hash string) error
}
