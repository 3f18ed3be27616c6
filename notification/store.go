package notification

import (
	"context"
	"errors"
)

// ErrDuplicateEvent is returned by Store.Insert for an event that already has its
// notification.
var ErrDuplicateEvent = errors.New("notification: event already handled")

// Store keeps the notifications sent.
type Store interface {
	// Insert records n and calls send, atomically: n is kept only if send succeeds,
	// and while send runs another Insert of the same event ID waits for the outcome.
	// It fails with ErrDuplicateEvent, without calling send, when a notification for
	// n.EventID exists.
	Insert(ctx context.Context, n Notification, send func(context.Context) error) error
	// ListByUser returns up to limit notifications of userID, newest first.
	ListByUser(ctx context.Context, userID string, limit int) ([]Notification, error)
}
