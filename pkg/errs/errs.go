// Package errs is kitshop's error model: domain errors are values with a kind (which
// decides the HTTP status) and a stable machine-readable code. Transports encode them as
// {"error":{"code","message"}}; clients decode them back into the same values, so a
// business error keeps its meaning across a service boundary.
package errs

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error; each kind maps to one HTTP status.
type Kind int

const (
	Internal         Kind = iota // 500: a bug or an unexpected failure; details are logged, not shown
	Invalid                      // 400: bad input
	Unauthenticated              // 401: no or invalid credentials
	Forbidden                    // 403: authenticated but not allowed
	NotFound                     // 404: does not exist, or belongs to someone else
	MethodNotAllowed             // 405
	Conflict                     // 409: clashes with the current state
	TooLarge                     // 413: body too large
	Unprocessable                // 422: a business rule refused it
	RateLimited                  // 429
	Unavailable                  // 503: an upstream is down or its breaker is open
	Timeout                      // 504: an upstream did not answer in time
)

var statuses = map[Kind]int{
	Internal:         http.StatusInternalServerError,
	Invalid:          http.StatusBadRequest,
	Unauthenticated:  http.StatusUnauthorized,
	Forbidden:        http.StatusForbidden,
	NotFound:         http.StatusNotFound,
	MethodNotAllowed: http.StatusMethodNotAllowed,
	Conflict:         http.StatusConflict,
	TooLarge:         http.StatusRequestEntityTooLarge,
	Unprocessable:    http.StatusUnprocessableEntity,
	RateLimited:      http.StatusTooManyRequests,
	Unavailable:      http.StatusServiceUnavailable,
	Timeout:          http.StatusGatewayTimeout,
}

// Status is the HTTP status for the kind.
func (k Kind) Status() int { return statuses[k] }

// KindOf maps an HTTP status back to a kind; statuses without a kind are Internal.
func KindOf(status int) Kind {
	for k, s := range statuses {
		if s == status {
			return k
		}
	}
	return Internal
}

// Error is a domain error. Code is stable and meant for programs ("out_of_stock");
// Message is for people.
type Error struct {
	Kind    Kind
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is makes errors.Is match two Errors with the same kind and code, so a sentinel such
// as inventory.ErrOutOfStock matches the copy a client decoded from the wire.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return e.Kind == t.Kind && e.Code == t.Code
}

// E builds an Error with a formatted message.
func E(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithMessage returns a copy of e with a more specific message; errors.Is still matches e.
func (e *Error) WithMessage(format string, args ...any) *Error {
	return &Error{Kind: e.Kind, Code: e.Code, Message: fmt.Sprintf(format, args...)}
}

// ErrOverloaded is a service or the gateway refusing work it cannot finish in time
// (503 with Retry-After): it is alive and protecting what it has admitted, so a
// caller may try another instance or later, and a circuit breaker does not count it.
var ErrOverloaded = E(Unavailable, "overloaded", "the service is at capacity; try again in a moment")

// From finds the *Error in err's chain. Anything else is an internal error, whose
// details must not reach a client.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: Internal, Code: "internal", Message: "internal error"}
}

// IsBusiness reports whether err is a domain outcome (any 4xx) rather than a failure of
// the system. Circuit breakers and retries must ignore business outcomes.
func IsBusiness(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind.Status() < 500
}
