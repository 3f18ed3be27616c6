package errs

import (
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// grpcDomain marks the ErrorInfo detail of a kitshop error, so that a client tells a
// service's answer (out_of_stock, card_declined) from a failure of the transport.
const grpcDomain = "kitshop"

// grpcCodes is the gRPC status code of each kind, for callers that read only the code.
// The kind itself travels in the ErrorInfo detail, so the mapping need not be one to one.
var grpcCodes = map[Kind]codes.Code{
	Internal:         codes.Internal,
	Invalid:          codes.InvalidArgument,
	Unauthenticated:  codes.Unauthenticated,
	Forbidden:        codes.PermissionDenied,
	NotFound:         codes.NotFound,
	MethodNotAllowed: codes.Unimplemented,
	Conflict:         codes.Aborted,
	TooLarge:         codes.ResourceExhausted,
	Unprocessable:    codes.FailedPrecondition,
	RateLimited:      codes.ResourceExhausted,
	Unavailable:      codes.Unavailable,
	Timeout:          codes.DeadlineExceeded,
}

// GRPCStatus is err as a gRPC status error: the kind's code, the message, and an
// ErrorInfo detail with the error's code and kind (its HTTP status). Internal errors
// carry a generic message, as over HTTP; the caller logs the detail.
func GRPCStatus(err error) error {
	e := From(err)
	st := status.New(grpcCodes[e.Kind], e.Message)
	info := &errdetails.ErrorInfo{Reason: e.Code, Domain: grpcDomain,
		Metadata: map[string]string{"status": strconv.Itoa(e.Kind.Status())}}
	if withInfo, err := st.WithDetails(info); err == nil {
		st = withInfo
	}
	return st.Err()
}

// FromGRPC is the *Error a kitshop service sent as err (see GRPCStatus), and true; or,
// for any other error (the transport's own: no connection, the deadline), nil and
// false.
func FromGRPC(err error) (*Error, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.Domain != grpcDomain {
			continue
		}
		code, convErr := strconv.Atoi(info.Metadata["status"])
		if convErr != nil {
			return nil, false
		}
		return &Error{Kind: KindOf(code), Code: info.Reason, Message: st.Message()}, true
	}
	return nil, false
}
