// Package httpjson decodes and encodes JSON bodies the strict way every kitshop
// transport wants: a size limit, no unknown fields, exactly one value, clear errors.
package httpjson

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	kitzipkin "github.com/go-kit/kit/tracing/zipkin"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/observe"
)

// MaxBody is the largest request body accepted (1 MiB).
const MaxBody = 1 << 20

// Errors returned by Decode.
var (
	ErrTooLarge    = errs.E(errs.TooLarge, "body_too_large", "request body is larger than 1 MiB")
	ErrMalformed   = errs.E(errs.Invalid, "malformed_json", "request body is not valid JSON")
	ErrContentType = errs.E(errs.Invalid, "unsupported_content_type", "request body must be application/json")
)

// Decode reads r's body into v. Unknown fields, trailing data, a wrong content type and
// bodies over MaxBody are errors. w may be nil (go-kit decoders have none); when given,
// the server closes the connection after an oversized body.
func Decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return ErrContentType
	}
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	return DecodeReader(body, v)
}

// DecodeReader decodes exactly one JSON value from rd into v, strictly.
func DecodeReader(rd io.Reader, v any) error {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ErrMalformed.WithMessage("request body has data after the JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var (
		maxErr  *http.MaxBytesError
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
	)
	switch {
	case errors.As(err, &maxErr):
		return ErrTooLarge
	case errors.Is(err, io.EOF):
		return ErrMalformed.WithMessage("request body is empty")
	case errors.As(err, &typeErr):
		return errs.E(errs.Invalid, "invalid_field", "field %q must be %s", typeErr.Field, typeErr.Type)
	case errors.As(err, &synErr), errors.Is(err, io.ErrUnexpectedEOF):
		return ErrMalformed
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errs.E(errs.Invalid, "unknown_field", "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return ErrMalformed.WithMessage("request body is not valid JSON: %v", err)
}

// DecodeRequest is a go-kit DecodeRequestFunc that reads a JSON body into a T by
// Decode's rules: use it as httpjson.DecodeRequest[createProductRequest].
func DecodeRequest[T any](_ context.Context, r *http.Request) (any, error) {
	var req T
	err := Decode(nil, r, &req)
	return req, err
}

// StatusCoder lets a response choose its status (202 for a pending order, say).
type StatusCoder interface{ StatusCode() int }

// Encode writes response as JSON with status 200, or the status the response asks for.
// It is a go-kit EncodeResponseFunc.
func Encode(_ context.Context, w http.ResponseWriter, response any) error {
	status := http.StatusOK
	if sc, ok := response.(StatusCoder); ok {
		status = sc.StatusCode()
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(response)
}

// DecodeResponse is a go-kit DecodeResponseFunc that reads a JSON body into a T:
// use it as httpjson.DecodeResponse[productResponse].
func DecodeResponse[T any](_ context.Context, r *http.Response) (any, error) {
	var v T
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
		return nil, errs.E(errs.Internal, "bad_upstream_response", "upstream answered with unreadable JSON: %v", err)
	}
	return v, nil
}

// ServerOptions are the go-kit server options every kitshop route uses: the JSON error
// encoder, the bearer token moved into the context, and a server span named spanName.
func ServerOptions(tracer *zipkin.Tracer, spanName string) []kithttp.ServerOption {
	opts := []kithttp.ServerOption{
		kithttp.ServerErrorEncoder(errs.EncodeError),
		kithttp.ServerBefore(auth.HTTPToContext(), func(ctx context.Context, _ *http.Request) context.Context {
			return observe.WithTransport(ctx, "http")
		}),
	}
	if tracer != nil {
		opts = append(opts, kitzipkin.HTTPServerTrace(tracer, kitzipkin.Name(spanName)))
	}
	return opts
}

// NotFound answers 404 not_found as JSON, for routers' unmatched paths.
func NotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errs.WriteHTTP(w, errs.E(errs.NotFound, "not_found", "no route for %s", r.URL.Path))
	})
}

// MethodNotAllowed answers 405 method_not_allowed as JSON.
func MethodNotAllowed() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errs.WriteHTTP(w, errs.E(errs.MethodNotAllowed, "method_not_allowed", "%s is not allowed on %s", r.Method, r.URL.Path))
	})
}
