// Package presign owns the presigned-URL placeholders of job documents.
// AWS IoT Jobs documents name their artifacts with placeholders,
// ${aws:iot:s3-presigned-url:https://s3.<region>.amazonaws.com/<bucket>/<key>}
// (or the -v2 spelling), that the service replaces with a short-lived
// presigned URL each time a device receives the document. This package
// parses those placeholders, checks them when a job is created, and
// replaces them with SigV4 query-signed URLs of an S3-compatible artifact
// store on the way out to a device.
//
// Objects are addressed path-style under the store's endpoint,
// {endpoint}/{bucket}/{key}: self-hosted S3 servers (MinIO, SeaweedFS,
// versitygw, Ceph) all serve that form without wildcard DNS, and the
// endpoint an operator configures is then the only host devices need to
// reach.
package presign

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/jobsbroker/jobsbroker/store/clock"
)

// The placeholder spellings AWS documents. Both are replaced the same way.
const (
	prefix   = "${aws:iot:s3-presigned-url:"
	prefixV2 = "${aws:iot:s3-presigned-url-v2:"
	// marker is what both prefixes begin with: the cheap test for whether
	// a document needs any work at all.
	marker = "${aws:iot:s3-presigned-url"

	// CodeSignPrefix begins a code-signing placeholder, which the AWS IoT
	// console fills with an AWS Signer signature before a job is created;
	// the Jobs service itself never replaces it.
	CodeSignPrefix = "${aws:iot:code-sign-signature:"
)

// DefaultExpiry is how long a presigned URL stays valid when the job's
// presignedUrlConfig does not say (AWS's default).
const DefaultExpiry = 3600 * time.Second

// MinExpiry is the shortest lifetime presignedUrlConfig.expiresInSec
// allows.
const MinExpiry = 60 * time.Second

// MaxExpiry is the longest lifetime presignedUrlConfig.expiresInSec
// allows; Check measures expanded documents with it.
const MaxExpiry = 3600 * time.Second

// ErrPlaceholder is wrapped by every error about a malformed placeholder.
var ErrPlaceholder = errors.New("presigned-URL placeholder")

// Has reports whether doc holds a presigned-URL placeholder. It is a plain
// substring search, cheap enough for every document a device receives.
func Has(doc string) bool { return strings.Contains(doc, marker) }

// Object is the S3 object a placeholder names.
type Object struct {
	Bucket string
	Key    string
}

// part is a piece of a parsed document: literal text, or a placeholder
// (obj set).
type part struct {
	text string
	obj  *Object
}

// parse splits doc into literal text and placeholders.
func parse(doc string) ([]part, error) {
	var parts []part
	for {
		i := strings.Index(doc, marker)
		if i < 0 {
			if doc != "" {
				parts = append(parts, part{text: doc})
			}
			return parts, nil
		}
		rest := doc[i:]
		var body string
		switch {
		case strings.HasPrefix(rest, prefixV2):
			body = rest[len(prefixV2):]
		case strings.HasPrefix(rest, prefix):
			body = rest[len(prefix):]
		default:
			return nil, fmt.Errorf("%w at character %d: it must be ${aws:iot:s3-presigned-url:URL} or ${aws:iot:s3-presigned-url-v2:URL}", ErrPlaceholder, i)
		}
		end := strings.IndexByte(body, '}')
		if end < 0 {
			return nil, fmt.Errorf("%w at character %d has no closing }", ErrPlaceholder, i)
		}
		obj, err := ParseObjectURL(body[:end])
		if err != nil {
			return nil, err
		}
		if i > 0 {
			parts = append(parts, part{text: doc[:i]})
		}
		parts = append(parts, part{obj: &obj})
		doc = body[end+1:]
	}
}

// virtualHost matches the virtual-hosted AWS S3 host names,
// {bucket}.s3.amazonaws.com, {bucket}.s3.{region}.amazonaws.com and
// {bucket}.s3-{region}.amazonaws.com (and their .com.cn forms).
var virtualHost = regexp.MustCompile(`^(.+)\.s3([.-][a-z0-9-]+)?\.amazonaws\.com(\.cn)?$`)

// ParseObjectURL returns the object a placeholder's URL names: an
// https (or http) URL of S3, virtual-hosted ({bucket}.s3...amazonaws.com/{key})
// or path-style ({host}/{bucket}/{key}, whatever the host), or an
// s3://{bucket}/{key} URL.
func ParseObjectURL(raw string) (Object, error) {
	u, err := url.Parse(raw)
	if err != nil || strings.ContainsFunc(raw, unsafeInURL) || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Object{}, fmt.Errorf("%w: %q is not an S3 object URL such as https://s3.us-east-1.amazonaws.com/bucket/key", ErrPlaceholder, raw)
	}
	var obj Object
	switch u.Scheme {
	case "s3":
		obj = Object{Bucket: u.Host, Key: strings.TrimPrefix(u.Path, "/")}
	case "https", "http":
		if m := virtualHost.FindStringSubmatch(u.Hostname()); m != nil {
			obj = Object{Bucket: m[1], Key: strings.TrimPrefix(u.Path, "/")}
		} else {
			obj.Bucket, obj.Key, _ = strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		}
	default:
		return Object{}, fmt.Errorf("%w: %q must be an https or s3 URL", ErrPlaceholder, raw)
	}
	if !validBucket(obj.Bucket) {
		return Object{}, fmt.Errorf("%w: %q names no valid bucket (3-63 characters from [a-z0-9.-])", ErrPlaceholder, raw)
	}
	if obj.Key == "" || len(obj.Key) > 1024 {
		return Object{}, fmt.Errorf("%w: %q names no object key (1-1024 bytes)", ErrPlaceholder, raw)
	}
	return obj, nil
}

// unsafeInURL reports the characters a placeholder's URL may not hold
// unescaped: they would break the JSON string the URL sits in, or are not
// URL characters at all.
func unsafeInURL(r rune) bool {
	return r <= ' ' || r == '"' || r == '\\' || r == '{' || r == '<' || r == '>' || r == 0x7f
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Store is an S3-compatible artifact store the broker signs URLs for.
type Store struct {
	// Endpoint is the base URL devices download from, such as
	// https://artifacts.example.com or http://127.0.0.1:9000; objects are
	// {Endpoint}/{bucket}/{key}.
	Endpoint string
	// Region is the region the store checks signatures against (MinIO and
	// most others: us-east-1).
	Region string
	// AccessKeyID and SecretAccessKey are the credentials URLs are signed
	// with; they need read access to the artifacts and nothing more.
	AccessKeyID     string
	SecretAccessKey string
}

// Signer signs object URLs of one artifact store.
type Signer struct {
	base   *url.URL
	region string
	creds  aws.Credentials
	v4     *v4.Signer
	clock  clock.Clock
}

// New returns a Signer for st; c stamps the signatures (nil: the wall
// clock).
func New(st Store, c clock.Clock) (*Signer, error) {
	u, err := url.Parse(st.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("artifact endpoint %q must be an http or https URL without query or credentials", st.Endpoint)
	}
	if st.Region == "" {
		return nil, errors.New("artifact store needs a region")
	}
	if st.AccessKeyID == "" || st.SecretAccessKey == "" {
		return nil, errors.New("artifact store needs an access key id and a secret access key")
	}
	if c == nil {
		c = clock.Real{}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return &Signer{
		base:   u,
		region: st.Region,
		creds:  aws.Credentials{AccessKeyID: st.AccessKeyID, SecretAccessKey: st.SecretAccessKey, Source: "jobsbroker"},
		// S3 takes the path escaped once, as it is.
		v4:    v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }),
		clock: c,
	}, nil
}

// URL returns a GET URL for obj, signed with SigV4 query authentication at
// the signer's clock and valid for ttl.
func (s *Signer) URL(obj Object, ttl time.Duration) (string, error) {
	u := *s.base
	u.Path = s.base.Path + "/" + obj.Bucket + "/" + obj.Key
	u.RawPath = s.base.EscapedPath() + "/" + obj.Bucket + "/" + escapeKey(obj.Key)
	u.RawQuery = "X-Amz-Expires=" + strconv.FormatInt(int64(ttl/time.Second), 10)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("presign %s/%s: %w", obj.Bucket, obj.Key, err)
	}
	signed, _, err := s.v4.PresignHTTP(context.Background(), s.creds, req, "UNSIGNED-PAYLOAD", "s3", s.region, s.clock.Now())
	if err != nil {
		return "", fmt.Errorf("presign %s/%s: %w", obj.Bucket, obj.Key, err)
	}
	return signed, nil
}

// escapeKey escapes an object key as S3's canonical URI does: every byte
// but the unreserved characters and "/" as %XX.
func escapeKey(key string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(key))
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// Expand returns doc with every placeholder replaced by a URL valid for
// ttl. A document without placeholders is returned as it is.
func (s *Signer) Expand(doc string, ttl time.Duration) (string, error) {
	if !Has(doc) {
		return doc, nil
	}
	parts, err := parse(doc)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(doc) + 512*len(parts))
	for _, p := range parts {
		if p.obj == nil {
			b.WriteString(p.text)
			continue
		}
		u, err := s.URL(*p.obj, ttl)
		if err != nil {
			return "", err
		}
		// A URL holds no character that JSON string contents escape.
		b.WriteString(u)
	}
	return b.String(), nil
}

// Check parses every placeholder of doc and returns the document as a
// device would receive it with the longest lifetime, so that callers can
// hold it to their size limits. s may be nil, in which case a document
// with placeholders is an error: nothing could sign them.
func (s *Signer) Check(doc string) (string, error) {
	if !Has(doc) {
		return doc, nil
	}
	if _, err := parse(doc); err != nil {
		return "", err
	}
	if s == nil {
		return "", fmt.Errorf("%w: this broker has no artifact store to sign URLs for (set -artifact-endpoint and its credentials)", ErrPlaceholder)
	}
	return s.Expand(doc, MaxExpiry)
}
