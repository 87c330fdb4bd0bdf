// Package sigv4 authenticates incoming HTTP requests signed with AWS
// Signature Version 4, so that unmodified AWS SDKs and the AWS CLI can call
// the broker's control plane and data plane by changing only the endpoint.
//
// The package owns three things:
//
//   - [Credentials]: the access keys the broker accepts, loaded with
//     [LoadCredentials] from a file in the AWS shared-credentials format, so
//     that an operator can point the broker and the aws CLI at one file.
//   - [Verifier]: checks the Authorization header (or a presigned query
//     string) of a request against those keys and returns the [Principal]
//     that signed it. Its key set can be swapped at run time with
//     [Verifier.SetCredentials], for example on SIGHUP.
//   - The error kinds ([ErrMissingAuth], [ErrMalformed], [ErrUnknownKey],
//     [ErrWrongService], [ErrWrongRegion], [ErrWrongDate], [ErrSkew],
//     [ErrExpired], [ErrSignatureMismatch], [ErrBodyTooLarge]) that every
//     verification failure wraps, each carried by an [*Error] with AWS's
//     message.
//
// It does not write HTTP responses: the caller maps the error kinds to the
// answers of AWS's front door (403 with MissingAuthenticationTokenException,
// IncompleteSignatureException, UnrecognizedClientException or
// InvalidSignatureException).
//
// The expected signature is computed by the AWS SDK for Go v2's own signer
// (github.com/aws/aws-sdk-go-v2/aws/signer/v4) over a copy of the request
// that carries only what the client said it signed; the package implements
// the parsing and the checks around it, not the signing algorithm.
//
// What a caller should know about how clients sign:
//
//   - The signing name differs between clients of the same API: the AWS
//     SDKs for Go and the AWS CLI v1 sign control-plane calls as "iot", the
//     AWS CLI v2 as "execute-api"; the jobs data plane is "iot-jobs-data".
//     The control plane's verifier must accept both of its names.
//   - Clients sign different headers. The SDK for Go v2 signs host,
//     x-amz-date, amz-sdk-invocation-id, amz-sdk-request and, with a body,
//     content-length and content-type; the SDK for Go v1 signs every header
//     but Authorization, User-Agent and X-Amzn-Trace-Id (content-length
//     included); botocore signs host, x-amz-date and content-type only. The
//     verifier reproduces whatever set the client names, so a proxy must
//     not change any of these (re-chunking a body drops Content-Length).
//   - The path is signed as the client sent it on the wire, escaped a second
//     time (the rule for every AWS service except S3). Clients escape path
//     labels themselves ("$next" travels as "%24next", "thing:1" as
//     "thing%3A1"), so the verifier uses the raw request target
//     (r.RequestURI), never the decoded r.URL.Path. Middleware that rewrites
//     r.URL (http.StripPrefix, for example) therefore does not break
//     verification, but a reverse proxy that re-encodes the path does.
//   - The host header is signed as sent; a proxy in front of the broker must
//     pass Host through unchanged.
//   - botocore (the AWS CLI) removes "." and empty segments from the path
//     before signing, while the Go SDKs do not; paths with "//" or dot
//     segments can therefore only verify for one of them. Valid job ids and
//     thing names never produce such paths.
//   - Replayed requests are accepted while they are within the clock skew
//     window, as AWS does: SigV4 proves who signed a request and that it was
//     not changed, not that it is fresh beyond the skew window.
package sigv4
