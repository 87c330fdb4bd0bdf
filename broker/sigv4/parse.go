package sigv4

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Protocol constants. Header and parameter names are those AWS documents.
const (
	algorithm       = "AWS4-HMAC-SHA256"
	scopeTerminator = "aws4_request"
	amzDateLayout   = "20060102T150405Z"
	scopeDateLayout = "20060102"

	hdrAuthorization = "Authorization"
	hdrAmzDate       = "X-Amz-Date"
	hdrDate          = "Date"
	hdrContentSHA256 = "X-Amz-Content-Sha256"

	qAlgorithm     = "X-Amz-Algorithm"
	qCredential    = "X-Amz-Credential"
	qDate          = "X-Amz-Date"
	qExpires       = "X-Amz-Expires"
	qSignedHeaders = "X-Amz-SignedHeaders"
	qSignature     = "X-Amz-Signature"

	// maxPresignExpires is the longest X-Amz-Expires AWS accepts: a week.
	maxPresignExpires = 7 * 24 * time.Hour
)

// scope is a parsed Credential= value:
// AKID/yyyymmdd/region/service/aws4_request.
type scope struct {
	AccessKeyID string
	Date        string // yyyymmdd
	Region      string
	Service     string
}

func (s scope) String() string {
	return s.AccessKeyID + "/" + s.Date + "/" + s.Region + "/" + s.Service + "/" + scopeTerminator
}

// authorization is a parsed Authorization header, or the equivalent
// presigned query parameters.
type authorization struct {
	scope
	// SignedHeaders are lower case, sorted, without duplicates.
	SignedHeaders []string
	// Signature is 64 lower-case hex digits.
	Signature string
}

// String formats a the way the AWS SDKs do.
func (a authorization) String() string {
	return algorithm + " Credential=" + a.scope.String() +
		", SignedHeaders=" + strings.Join(a.SignedHeaders, ";") +
		", Signature=" + a.Signature
}

func (a authorization) signs(header string) bool {
	for _, h := range a.SignedHeaders {
		if h == header {
			return true
		}
	}
	return false
}

// presigned is a parsed presigned query string.
type presigned struct {
	authorization
	Date time.Time
	// Expires is X-Amz-Expires, or zero when the parameter is absent.
	Expires time.Duration
}

// values returns p as the query parameters that carry it.
func (p presigned) values() url.Values {
	v := url.Values{
		qAlgorithm:     {algorithm},
		qCredential:    {p.scope.String()},
		qDate:          {p.Date.UTC().Format(amzDateLayout)},
		qSignedHeaders: {strings.Join(p.SignedHeaders, ";")},
		qSignature:     {p.Signature},
	}
	if p.Expires > 0 {
		v.Set(qExpires, strconv.FormatInt(int64(p.Expires/time.Second), 10))
	}
	return v
}

func malformed(format string, args ...any) *Error {
	return newError(ErrMalformed, fmt.Sprintf(format, args...))
}

// hasPresignParams reports whether q tries presigned authentication.
func hasPresignParams(q url.Values) bool {
	for _, k := range []string{qAlgorithm, qCredential, qSignature} {
		if _, ok := q[k]; ok {
			return true
		}
	}
	return false
}

// parseAuthorization parses an Authorization header value:
//
//	AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/iot/aws4_request, SignedHeaders=host;x-amz-date, Signature=<64 hex>
//
// The three parameters may come in any order, separated by commas with
// optional spaces. Every error is an *Error of kind ErrMalformed.
func parseAuthorization(h string) (authorization, error) {
	var a authorization
	alg, params, _ := strings.Cut(strings.TrimLeft(h, " "), " ")
	if alg != algorithm {
		if strings.HasPrefix(alg, "AWS4-") {
			return a, malformed("Unsupported AWS 'algorithm': %q; only %s is accepted.", truncate(alg), algorithm)
		}
		return a, malformed("Unsupported Authorization Type: only %s is accepted.", algorithm)
	}
	var cred, signed, sig string
	var haveCred, haveSigned, haveSig bool
	for part := range strings.SplitSeq(params, ",") {
		part = strings.Trim(part, " ")
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return a, malformed("Authorization header has a parameter without '=': %q.", truncate(part))
		}
		var dst *string
		var have *bool
		switch name {
		case "Credential":
			dst, have = &cred, &haveCred
		case "SignedHeaders":
			dst, have = &signed, &haveSigned
		case "Signature":
			dst, have = &sig, &haveSig
		default:
			return a, malformed("Authorization header has an unknown parameter %q.", truncate(name))
		}
		if *have {
			return a, malformed("Authorization header has parameter %q twice.", name)
		}
		*dst, *have = value, true
	}
	var missing []string
	for _, m := range []struct {
		have bool
		name string
	}{{haveCred, "Credential"}, {haveSigned, "SignedHeaders"}, {haveSig, "Signature"}} {
		if !m.have {
			missing = append(missing, "Authorization header requires '"+m.name+"' parameter.")
		}
	}
	if len(missing) > 0 {
		return a, malformed("%s", strings.Join(missing, " "))
	}
	return parseParts(cred, signed, sig, "Credential")
}

// parsePresigned parses the authentication parameters of a presigned
// query string. Every error is an *Error of kind ErrMalformed.
func parsePresigned(q url.Values) (presigned, error) {
	var p presigned
	get := func(name string, required bool) (string, error) {
		v, ok := q[name]
		switch {
		case !ok && required:
			return "", malformed("Query-string authentication requires the %s parameter.", name)
		case len(v) > 1:
			return "", malformed("Query-string authentication has the %s parameter twice.", name)
		case !ok:
			return "", nil
		}
		return v[0], nil
	}
	alg, err := get(qAlgorithm, true)
	if err != nil {
		return p, err
	}
	if alg != algorithm {
		return p, malformed("X-Amz-Algorithm only supports %q.", algorithm)
	}
	var vals [5]string
	for i, name := range []string{qCredential, qDate, qSignedHeaders, qSignature, qExpires} {
		if vals[i], err = get(name, name != qExpires); err != nil {
			return p, err
		}
	}
	a, err := parseParts(vals[0], vals[2], vals[3], qCredential)
	if err != nil {
		return p, err
	}
	p.authorization = a
	if p.Date, err = parseAmzDate(vals[1], qDate); err != nil {
		return p, err
	}
	if _, has := q[qExpires]; has {
		if p.Expires, err = parseExpires(vals[4]); err != nil {
			return p, err
		}
	}
	return p, nil
}

// parseParts parses the three values common to both forms; credName names
// the credential for messages ("Credential" or "X-Amz-Credential").
func parseParts(cred, signed, sig, credName string) (authorization, error) {
	var a authorization
	var err error
	if a.scope, err = parseScope(cred, credName); err != nil {
		return a, err
	}
	if a.SignedHeaders, err = parseSignedHeaders(signed); err != nil {
		return a, err
	}
	if len(sig) != 64 || strings.Trim(sig, "0123456789abcdef") != "" {
		return a, malformed("Signature must be 64 lower-case hexadecimal digits.")
	}
	a.Signature = sig
	return a, nil
}

func parseScope(cred, credName string) (scope, error) {
	bad := func(why string) (scope, error) {
		return scope{}, malformed("Error parsing the %s parameter: %s; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".", credName, why)
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return bad("the Credential is mal-formed")
	}
	s := scope{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3]}
	if err := validAccessKeyID(s.AccessKeyID); err != nil {
		return bad("invalid access key id")
	}
	if _, err := time.Parse(scopeDateLayout, s.Date); err != nil || len(s.Date) != 8 {
		return bad("invalid date")
	}
	if !isScopeName(s.Region) {
		return bad("invalid region")
	}
	if !isScopeName(s.Service) {
		return bad("invalid service")
	}
	if parts[4] != scopeTerminator {
		return bad("incorrect terminal, should be 'aws4_request'")
	}
	return s, nil
}

// isScopeName accepts region and service names: letters, digits, '.', '_'
// and '-', at most 64 characters.
func isScopeName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func parseSignedHeaders(s string) ([]string, error) {
	if s == "" {
		return nil, malformed("SignedHeaders must not be empty.")
	}
	hs := strings.Split(s, ";")
	for i, h := range hs {
		if h == "" || !isLowerToken(h) {
			return nil, malformed("SignedHeaders entry %q is not a lower-case header name.", truncate(h))
		}
		if i > 0 && hs[i-1] >= h {
			return nil, malformed("SignedHeaders must be sorted and free of duplicates: %q is out of order.", truncate(h))
		}
	}
	return hs, nil
}

// isLowerToken reports whether s is an HTTP header name (RFC 9110 token)
// without upper-case letters.
func isLowerToken(s string) bool {
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func parseAmzDate(v, name string) (time.Time, error) {
	t, err := time.Parse(amzDateLayout, v)
	if err != nil {
		return time.Time{}, malformed("%s must be in the ISO8601 basic format \"yyyyMMdd'T'HHmmss'Z'\", got %q.", name, truncate(v))
	}
	return t, nil
}

func parseExpires(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || strings.Trim(v, "0123456789") != "" || n <= 0 || time.Duration(n)*time.Second > maxPresignExpires {
		return 0, malformed("X-Amz-Expires must be a number of seconds between 1 and %d, got %q.", int64(maxPresignExpires/time.Second), truncate(v))
	}
	return time.Duration(n) * time.Second, nil
}

// truncate bounds client-controlled text quoted in messages.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
