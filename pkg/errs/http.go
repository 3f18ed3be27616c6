package errs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Body is the wire form of every error response. RequestID is set on the answers
// that name their request in an X-Request-Id header (the gateway's), so that a user
// can quote it from the body as well.
type Body struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id,omitempty"`
	} `json:"error"`
}

// RequestIDHeader names the request an answer is for.
const RequestIDHeader = "X-Request-Id"

// retryAfterSeconds is what a 429 or 503 suggests to clients when the error itself
// does not say.
const retryAfterSeconds = 1

// RetryAfter can be implemented by an error to set the Retry-After header.
type RetryAfter interface{ RetryAfterSeconds() int }

// WriteHTTP writes err as JSON with its status, and the request ID of w's
// X-Request-Id header when it has one. Internal errors are written with a generic
// message; the caller logs the detail.
func WriteHTTP(w http.ResponseWriter, err error) {
	e := From(err)
	status := e.Kind.Status()
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		secs := retryAfterSeconds
		if ra, ok := err.(RetryAfter); ok {
			secs = ra.RetryAfterSeconds()
		}
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	var b Body
	b.Error.Code, b.Error.Message, b.Error.RequestID = e.Code, e.Message, h.Get(RequestIDHeader)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(b)
}

// EncodeError is a go-kit ServerErrorEncoder.
func EncodeError(_ context.Context, err error, w http.ResponseWriter) { WriteHTTP(w, err) }

// maxErrorBody bounds how much of an upstream error body is read.
const maxErrorBody = 64 << 10

// FromResponse turns a non-2xx upstream response into an *Error with the status's kind
// and the upstream's code and message. It reads (a bounded part of) the body.
func FromResponse(resp *http.Response) *Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return FromBody(resp.StatusCode, data)
}

// FromBody is FromResponse for an answer already read: its status and body. A body
// that is not the convention's is upstream_error, with the status in the message.
func FromBody(status int, body []byte) *Error {
	var b Body
	if json.Unmarshal(body, &b) == nil && b.Error.Code != "" {
		return &Error{Kind: KindOf(status), Code: b.Error.Code, Message: b.Error.Message}
	}
	return &Error{
		Kind:    KindOf(status),
		Code:    "upstream_error",
		Message: fmt.Sprintf("upstream answered %d %s", status, http.StatusText(status)),
	}
}
