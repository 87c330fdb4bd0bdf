package sigv4

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/logging"
)

// Defaults for [Options].
const (
	// DefaultMaxSkew is how far a request time may be from the verifier's
	// clock: five minutes, as AWS IoT's front door allows ("Signature
	// expired: ... (... - 5 min.)").
	DefaultMaxSkew = 5 * time.Minute
	// DefaultMaxBodyBytes is the largest body the verifier reads to hash.
	DefaultMaxBodyBytes = 1 << 20
)

// signatureMismatchMessage is AWS's wording.
const signatureMismatchMessage = "The request signature we calculated does not match the signature you provided. " +
	"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."

// Options configures a [Verifier]. Zero fields take their defaults.
type Options struct {
	// Services lists the signing names accepted in the credential scope,
	// for example {"iot", "execute-api"} for the control plane or
	// {"iot-jobs-data"} for the data plane. Required.
	Services []string
	// Region, when set, is the only region a credential scope may name,
	// as AWS accepts only signatures scoped to the region it serves; empty
	// accepts any region.
	Region string
	// Now returns the current time. Default: time.Now.
	Now func() time.Time
	// MaxSkew bounds the distance between the request time and Now.
	// Default: [DefaultMaxSkew].
	MaxSkew time.Duration
	// MaxBodyBytes bounds the body read to compute its hash; a larger
	// body fails with [ErrBodyTooLarge]. Default: [DefaultMaxBodyBytes].
	MaxBodyBytes int64
}

// Principal is who signed a verified request.
type Principal struct {
	// AccessKeyID is the key that signed the request.
	AccessKeyID string
	// Name is the key's principal name (jobsbroker_name or the profile).
	Name string
	// Region and Service are taken from the credential scope.
	Region  string
	Service string
	// SignedAt is the request time the client signed (X-Amz-Date).
	SignedAt time.Time
	// Presigned is true for query-string (presigned URL) authentication.
	Presigned bool
}

// Verifier checks AWS Signature Version 4 on incoming requests. It is safe
// for concurrent use, including [Verifier.SetCredentials] while requests
// are being verified.
type Verifier struct {
	services map[string]bool
	firstSvc string
	region   string
	now      func() time.Time
	skew     time.Duration
	maxBody  int64
	signer   *v4.Signer
	creds    atomic.Pointer[Credentials]
}

// NewVerifier returns a verifier accepting the keys in creds (nil accepts
// none until [Verifier.SetCredentials]). It fails if opts names no service
// or a negative limit.
func NewVerifier(creds *Credentials, opts Options) (*Verifier, error) {
	if len(opts.Services) == 0 {
		return nil, errors.New("sigv4: NewVerifier: no accepted service")
	}
	if opts.MaxSkew < 0 || opts.MaxBodyBytes < 0 {
		return nil, errors.New("sigv4: NewVerifier: negative MaxSkew or MaxBodyBytes")
	}
	v := &Verifier{
		services: map[string]bool{},
		firstSvc: opts.Services[0],
		region:   opts.Region,
		now:      opts.Now,
		skew:     opts.MaxSkew,
		maxBody:  opts.MaxBodyBytes,
		signer:   v4.NewSigner(),
	}
	if opts.Region != "" && !isScopeName(opts.Region) {
		return nil, fmt.Errorf("sigv4: NewVerifier: invalid region %q", opts.Region)
	}
	for _, s := range opts.Services {
		if !isScopeName(s) {
			return nil, fmt.Errorf("sigv4: NewVerifier: invalid service name %q", s)
		}
		v.services[s] = true
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.skew == 0 {
		v.skew = DefaultMaxSkew
	}
	if v.maxBody == 0 {
		v.maxBody = DefaultMaxBodyBytes
	}
	v.creds.Store(creds)
	return v, nil
}

// SetCredentials atomically replaces the accepted keys. Requests already
// past the key lookup finish with the old set.
func (v *Verifier) SetCredentials(c *Credentials) { v.creds.Store(c) }

// Credentials returns the accepted keys.
func (v *Verifier) Credentials() *Credentials { return v.creds.Load() }

// Verify authenticates r, signed either with an Authorization header or as
// a presigned URL, and returns who signed it.
//
// It reads the body (up to Options.MaxBodyBytes) to hash it and puts an
// equivalent body back on r, so the handler can still read it.
//
// A request that fails verification yields an [*Error] whose Kind is one
// of the Err* variables; an error reading the body is returned wrapped as
// it is.
func (v *Verifier) Verify(r *http.Request) (Principal, error) {
	rawPath, rawQuery := requestTarget(r)
	query, queryErr := url.ParseQuery(rawQuery)
	authz := r.Header.Values(hdrAuthorization)
	presign := hasPresignParams(query)
	switch {
	case len(authz) == 0 && !presign:
		return Principal{}, newError(ErrMissingAuth, "Missing Authentication Token")
	case len(authz) > 0 && presign:
		return Principal{}, malformed("Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified.")
	case len(authz) > 1:
		return Principal{}, malformed("The request has more than one Authorization header.")
	case queryErr != nil:
		return Principal{}, malformed("The query string cannot be parsed.")
	}

	// Parse: algorithm, credential format, signed headers, request time.
	var (
		a       authorization
		at      time.Time
		expires time.Duration
		err     error
	)
	if presign {
		var p presigned
		if p, err = parsePresigned(query); err != nil {
			return Principal{}, err
		}
		a, at, expires = p.authorization, p.Date, p.Expires
	} else {
		if a, err = parseAuthorization(authz[0]); err != nil {
			return Principal{}, err
		}
		if at, err = requestTime(r.Header); err != nil {
			return Principal{}, err
		}
	}
	if !a.signs("host") {
		return Principal{}, malformed("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}

	key, ok := v.creds.Load().Lookup(a.AccessKeyID)
	if !ok {
		return Principal{}, newError(ErrUnknownKey, "The security token included in the request is invalid.")
	}
	if !v.services[a.Service] {
		return Principal{}, newError(ErrWrongService, fmt.Sprintf("Credential should be scoped to correct service: '%s'.", v.firstSvc))
	}
	if v.region != "" && a.Region != v.region {
		return Principal{}, newError(ErrWrongRegion, fmt.Sprintf("Credential should be scoped to a valid region, not '%s'.", a.Region))
	}
	if day := at.UTC().Format(scopeDateLayout); a.Date != day {
		return Principal{}, newError(ErrWrongDate, fmt.Sprintf("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			a.Date, day, at.UTC().Format(amzDateLayout)))
	}
	if err := v.checkTime(at, expires, presign); err != nil {
		return Principal{}, err
	}
	if !presign && !a.signs("x-amz-date") {
		// The SDK signer always signs X-Amz-Date, so a request signed
		// with Date alone cannot be reproduced.
		return Principal{}, malformed("This service requires 'x-amz-date' to be a signed header; requests signed with the Date header alone are not supported.")
	}

	body, err := v.readBody(r)
	if err != nil {
		return Principal{}, err
	}
	hash, err := payloadHash(r.Header, body)
	if err != nil {
		return Principal{}, err
	}

	want, err := v.expected(r, a, rawPath, query, presign, at, hash, key)
	if err != nil {
		return Principal{}, err
	}
	if subtle.ConstantTimeCompare([]byte(a.Signature), []byte(want.Signature)) != 1 {
		return Principal{}, &Error{Kind: ErrSignatureMismatch, Message: signatureMismatchMessage, Detail: want.Detail}
	}
	return Principal{
		AccessKeyID: key.AccessKeyID,
		Name:        key.Name,
		Region:      a.Region,
		Service:     a.Service,
		SignedAt:    at,
		Presigned:   presign,
	}, nil
}

// requestTarget returns the path and query exactly as the client sent
// them. Clients sign the escaped path they send, and a server's r.URL.Path
// is decoded (and middleware may rewrite r.URL), so the raw request target
// is the reliable source. Requests built in-process (no RequestURI) fall
// back to r.URL.
func requestTarget(r *http.Request) (path, query string) {
	target := r.RequestURI
	if target == "" || target == "*" {
		return r.URL.EscapedPath(), r.URL.RawQuery
	}
	if !strings.HasPrefix(target, "/") {
		// Absolute form, "http://host/path?query", as sent to proxies.
		if _, rest, ok := strings.Cut(target, "://"); ok {
			if i := strings.IndexAny(rest, "/?"); i >= 0 {
				target = rest[i:]
			} else {
				target = ""
			}
		}
	}
	path, query, _ = strings.Cut(target, "?")
	return path, query
}

// requestTime reads X-Amz-Date, or Date when X-Amz-Date is absent.
func requestTime(h http.Header) (time.Time, error) {
	if vs := h.Values(hdrAmzDate); len(vs) > 0 {
		if len(vs) > 1 {
			return time.Time{}, malformed("The request has more than one X-Amz-Date header.")
		}
		return parseAmzDate(vs[0], hdrAmzDate)
	}
	if d := h.Get(hdrDate); d != "" {
		t, err := http.ParseTime(d)
		if err != nil {
			return time.Time{}, malformed("Date header %q is not an HTTP date.", truncate(d))
		}
		return t.UTC(), nil
	}
	return time.Time{}, malformed("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
}

// checkTime applies the skew window and, for presigned requests with
// X-Amz-Expires, the lifetime.
func (v *Verifier) checkTime(at time.Time, expires time.Duration, presign bool) error {
	now := v.now().UTC()
	f := func(t time.Time) string { return t.UTC().Format(amzDateLayout) }
	skew := formatSkew(v.skew)
	if late := now.Add(v.skew); at.After(late) {
		return newError(ErrSkew, fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + %s.)", f(at), f(late), f(now), skew))
	}
	if presign && expires > 0 {
		if end := at.Add(expires); now.After(end) {
			return newError(ErrExpired, fmt.Sprintf("Request has expired: signed at %s for %d seconds, which ended at %s; now is %s.",
				f(at), int64(expires/time.Second), f(end), f(now)))
		}
		return nil
	}
	if early := now.Add(-v.skew); at.Before(early) {
		return newError(ErrSkew, fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %s.)", f(at), f(early), f(now), skew))
	}
	return nil
}

// formatSkew writes a skew the way AWS messages do ("5 min").
func formatSkew(d time.Duration) string {
	if d%time.Minute == 0 {
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	}
	return d.String()
}

// readBody reads up to the limit and puts the body back on r.
func (v *Verifier) readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	tooLarge := newError(ErrBodyTooLarge, fmt.Sprintf("The request body is larger than the %d bytes this service reads to verify its signature.", v.maxBody))
	if r.ContentLength > v.maxBody {
		return nil, tooLarge
	}
	orig := r.Body
	buf, err := io.ReadAll(io.LimitReader(orig, v.maxBody+1))
	r.Body = replayBody{Reader: io.MultiReader(bytes.NewReader(buf), orig), Closer: orig}
	if err != nil {
		return nil, fmt.Errorf("sigv4: read request body: %w", err)
	}
	if int64(len(buf)) > v.maxBody {
		return nil, tooLarge
	}
	return buf, nil
}

// replayBody serves the bytes already read, then the rest of the original
// body, and closes the original.
type replayBody struct {
	io.Reader
	io.Closer
}

// payloadHash returns the hash the client must have signed: the SHA-256 of
// the body, written as the client wrote it in X-Amz-Content-Sha256 when it
// sent that header.
func payloadHash(h http.Header, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	computed := hex.EncodeToString(sum[:])
	declared := h.Values(hdrContentSHA256)
	switch {
	case len(declared) == 0:
		return computed, nil
	case len(declared) > 1:
		return "", malformed("The request has more than one x-amz-content-sha256 header.")
	case declared[0] == "UNSIGNED-PAYLOAD" || strings.HasPrefix(declared[0], "STREAMING-"):
		return "", malformed("x-amz-content-sha256 %q is not accepted: this service requires the SHA-256 of the payload.", truncate(declared[0]))
	case !strings.EqualFold(declared[0], computed):
		return "", newError(ErrSignatureMismatch, "The provided 'x-amz-content-sha256' header does not match what was computed.")
	}
	return declared[0], nil
}

// expectation is what the signer produced for the rebuilt request.
type expectation struct {
	Signature string
	Detail    string // canonical request and string to sign, for logs
}

// expected signs a copy of r that carries only what a says was signed and
// returns the signature the client should have sent.
func (v *Verifier) expected(r *http.Request, a authorization, rawPath string, query url.Values, presign bool, at time.Time, payloadHash string, key Key) (expectation, error) {
	// The signer takes the path from URL.Opaque verbatim when it is set
	// (after cutting a leading "//authority"), then escapes it once more,
	// as clients do. The authority here is a placeholder: the signed host
	// comes from req.Host.
	u := &url.URL{Opaque: "//host" + rawPath}
	if presign {
		q := url.Values{}
		for k, vs := range query {
			if k != qSignature {
				q[k] = vs
			}
		}
		u.RawQuery = q.Encode()
	} else {
		u.RawQuery = query.Encode()
	}
	// An empty URL scheme keeps the signer from dropping a default port
	// from Host: the client signed Host as it sent it.
	req := &http.Request{Method: r.Method, URL: u, Host: r.Host, Header: http.Header{}}

	for _, name := range a.SignedHeaders {
		switch name {
		case "host":
			continue // the signer takes it from req.Host
		case "content-length":
			// The signer signs content-length from req.ContentLength,
			// and only when it is positive.
			n := r.ContentLength
			if s := r.Header.Get("Content-Length"); s != "" {
				n, _ = strconv.ParseInt(s, 10, 64)
			}
			if n <= 0 {
				return expectation{}, &Error{Kind: ErrSignatureMismatch, Message: signatureMismatchMessage,
					Detail: "content-length is signed but not positive; the SDK signer cannot reproduce that"}
			}
			req.ContentLength = n
			continue
		case "x-amz-date":
			if !presign {
				continue // the signer writes it from the signing time
			}
		}
		vals := r.Header.Values(name)
		if len(vals) == 0 {
			vals = []string{""}
		}
		// A lower-case key keeps the header out of the signer's list of
		// ignored headers (User-Agent, Expect, ...), which matches
		// canonical keys only: whatever the client signed, we sign.
		req.Header[name] = vals
	}

	var detail string
	opts := func(o *v4.SignerOptions) {
		o.DisableHeaderHoisting = true // keep signed headers in headers
		o.DisableSessionToken = true   // a client's token stays as it sent it
		o.LogSigning = true
		o.Logger = logging.LoggerFunc(func(_ logging.Classification, format string, args ...any) {
			detail = fmt.Sprintf(format, args...)
		})
	}
	creds := aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}
	ctx := r.Context()

	var gotSigned, gotSig string
	if presign {
		signedURI, _, err := v.signer.PresignHTTP(ctx, creds, req, payloadHash, a.Service, a.Region, at, opts)
		if err != nil {
			return expectation{}, fmt.Errorf("sigv4: sign: %w", err)
		}
		_, rq, _ := strings.Cut(signedURI, "?")
		out, err := url.ParseQuery(rq)
		if err != nil {
			return expectation{}, fmt.Errorf("sigv4: parse signer output: %w", err)
		}
		gotSigned, gotSig = out.Get(qSignedHeaders), out.Get(qSignature)
	} else {
		if err := v.signer.SignHTTP(ctx, creds, req, payloadHash, a.Service, a.Region, at, opts); err != nil {
			return expectation{}, fmt.Errorf("sigv4: sign: %w", err)
		}
		out, err := parseAuthorization(req.Header.Get(hdrAuthorization))
		if err != nil {
			return expectation{}, fmt.Errorf("sigv4: parse signer output: %w", err)
		}
		gotSigned, gotSig = strings.Join(out.SignedHeaders, ";"), out.Signature
	}
	if want := strings.Join(a.SignedHeaders, ";"); gotSigned != want {
		return expectation{}, &Error{Kind: ErrSignatureMismatch, Message: signatureMismatchMessage,
			Detail: fmt.Sprintf("the client signed headers %q but the SDK signer reproduces %q\n%s", want, gotSigned, detail)}
	}
	return expectation{Signature: gotSig, Detail: detail}, nil
}
