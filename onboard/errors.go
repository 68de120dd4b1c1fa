package onboard

import (
	"errors"
	"fmt"
)

// Error codes returned by the services. Handlers map each code to one HTTP
// status; the code is also stored with a failed onboarding.
const (
	EInvalid       = "invalid"
	ENotFound      = "not_found"
	EConflict      = "conflict"
	ENodeOffline   = "node_offline"
	ENodeFull      = "node_full"
	EGridFailed    = "grid_failed"
	EInstallFailed = "install_failed"
	EUnauthorized  = "unauthorized"
	EForbidden     = "forbidden"
	ETimeout       = "timeout"
	ECanceled      = "canceled"
	EUnavailable   = "unavailable"
	EInternal      = "internal"
)

// Error is a failure meant for the admin: a code, a plain message that says
// what failed and what to do next, and the input field it concerns, if any.
type Error struct {
	Code    string
	Message string
	Field   string
	Err     error
}

// Error returns the message, followed by the wrapped cause when there is one.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an invalid-input error for one field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, ECanceled for
// a canceled context, ETimeout for an expired deadline, and EInternal for
// anything else. It returns "" for a nil error.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, errCanceled):
		return ECanceled
	default:
		return EInternal
	}
}

// ErrorMessage returns the admin-facing message of err. Internal errors get a
// generic message, because their text may name files or SQL.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if err == nil {
		return ""
	}
	return "Internal error. The server log has the details."
}

// ErrorField returns the input field an invalid-input error concerns, or "".
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// errCanceled marks work stopped by an admin's cancel request.
var errCanceled = errors.New("canceled by an admin")

// FormKeyUsed returns the error for a form key that already started the
// onboarding of another tester, as a form brought back by the browser's
// Back button does. The key prevents double starts, so it starts one tester.
func FormKeyUsed(startedUsername, username string) *Error {
	return FieldError("form_key", "This form already started the onboarding of %s, so it cannot start %s. "+
		"Send it again with a new form key; on the page, press Start again, because the form now has one.",
		startedUsername, username)
}

// ErrCancelPending is returned by the store for a cancel request on an
// onboarding whose cancel was already requested; nothing is stored then.
var ErrCancelPending = errors.New("cancel already requested")

// ErrShutdown is the cause of contexts ended because the deployer stops.
var ErrShutdown = errors.New("the deployer is shutting down")

// errStageTimeout is the cause of a stage context whose deadline passed.
var errStageTimeout = errors.New("stage deadline passed")
