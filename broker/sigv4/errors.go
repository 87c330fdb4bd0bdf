package sigv4

import "errors"

// Error kinds. Every verification failure returned by [Verifier.Verify] is
// an [*Error] whose Kind is one of these, so callers test it with errors.Is
// and read the client-facing message with errors.As.
var (
	// ErrMissingAuth: the request carries neither an Authorization header
	// nor presigned query parameters (an anonymous request).
	ErrMissingAuth = errors.New("sigv4: missing authentication")

	// ErrMalformed: the Authorization header, the presigned query
	// parameters, the date headers or the credential scope cannot be
	// parsed, or break a rule of the protocol (for example "host" not
	// signed).
	ErrMalformed = errors.New("sigv4: malformed authentication")

	// ErrUnknownKey: the access key id is not in the credential set.
	ErrUnknownKey = errors.New("sigv4: unknown access key")

	// ErrWrongService: the credential scope names a service the verifier
	// does not accept.
	ErrWrongService = errors.New("sigv4: wrong service in credential scope")

	// ErrWrongRegion: the credential scope names another region than the
	// one the verifier serves (Options.Region).
	ErrWrongRegion = errors.New("sigv4: wrong region in credential scope")

	// ErrWrongDate: the credential scope's date is not the day of the
	// request time.
	ErrWrongDate = errors.New("sigv4: credential scope date differs from the request date")

	// ErrSkew: the request time is further from the verifier's clock than
	// the allowed skew.
	ErrSkew = errors.New("sigv4: request time outside allowed clock skew")

	// ErrExpired: a presigned request is past its X-Amz-Expires lifetime.
	ErrExpired = errors.New("sigv4: presigned request expired")

	// ErrSignatureMismatch: the signature (or the x-amz-content-sha256
	// header) does not match what the verifier computed.
	ErrSignatureMismatch = errors.New("sigv4: signature mismatch")

	// ErrBodyTooLarge: the body is larger than the verifier will read to
	// hash it.
	ErrBodyTooLarge = errors.New("sigv4: request body too large to verify")
)

// Error is the error returned for a request that fails verification.
type Error struct {
	// Kind is one of the Err* variables of this package.
	Kind error
	// Message explains the failure in the words AWS uses where AWS has
	// them. It holds nothing secret and is meant to be sent to the client.
	Message string
	// Detail is for server logs and may be empty. On a signature mismatch
	// it holds the canonical request and string to sign that the verifier
	// computed (no secret material, but more than a client needs).
	Detail string
}

// Error returns the kind and the message.
func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Message }

// Unwrap returns the kind, so that errors.Is(err, ErrSkew) works.
func (e *Error) Unwrap() error { return e.Kind }

func newError(kind error, msg string) *Error { return &Error{Kind: kind, Message: msg} }
