package sigv4

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"gopkg.in/ini.v1"
)

// ErrInvalidCredentials is wrapped by every error that [LoadCredentials] and
// [NewCredentials] return for content they reject (as opposed to a file that
// cannot be read, whose error wraps the os error).
var ErrInvalidCredentials = errors.New("sigv4: invalid credentials")

// Keys recognised in a profile section. Other keys (region, output,
// aws_session_token, role_arn, ...) are left to the aws CLI and ignored.
const (
	iniAccessKeyID = "aws_access_key_id"
	iniSecretKey   = "aws_secret_access_key"
	iniName        = "jobsbroker_name"
)

// maxAccessKeyIDLen bounds access key ids; AWS allows up to 128 characters.
const maxAccessKeyIDLen = 128

// Key is one access key the broker accepts.
type Key struct {
	// AccessKeyID is the public half, as it appears in Credential=.
	AccessKeyID string
	// SecretAccessKey is the shared secret the client signs with.
	SecretAccessKey string
	// Name names the principal the key belongs to. Several keys may share
	// a name (key rotation).
	Name string
}

// String names the key without its secret, so that logging a Key (or a
// struct holding one) with %v cannot leak the secret.
func (k Key) String() string { return k.Name + " (" + k.AccessKeyID + ")" }

// GoString is String, for %#v.
func (k Key) GoString() string { return "sigv4.Key{" + k.String() + "}" }

// Credentials is an immutable set of keys indexed by access key id. Build it
// with [LoadCredentials] or [NewCredentials]; a nil *Credentials holds no key.
type Credentials struct {
	byID map[string]Key
}

// NewCredentials returns a set holding keys. An empty or duplicate access
// key id, an access key id with characters outside [A-Za-z0-9_.-] or longer
// than 128, an empty secret or an empty name is an error wrapping
// [ErrInvalidCredentials].
func NewCredentials(keys ...Key) (*Credentials, error) {
	c := &Credentials{byID: make(map[string]Key, len(keys))}
	for i, k := range keys {
		if err := validateKey(k); err != nil {
			return nil, fmt.Errorf("%w: key %d: %w", ErrInvalidCredentials, i, err)
		}
		if _, dup := c.byID[k.AccessKeyID]; dup {
			return nil, fmt.Errorf("%w: key %d: duplicate access key id %q", ErrInvalidCredentials, i, k.AccessKeyID)
		}
		c.byID[k.AccessKeyID] = k
	}
	return c, nil
}

// Len returns the number of keys in the set.
func (c *Credentials) Len() int {
	if c == nil {
		return 0
	}
	return len(c.byID)
}

// Lookup returns the key with the given access key id.
func (c *Credentials) Lookup(accessKeyID string) (Key, bool) {
	if c == nil {
		return Key{}, false
	}
	k, ok := c.byID[accessKeyID]
	return k, ok
}

// LoadCredentials reads an AWS shared-credentials file (the format of
// ~/.aws/credentials), so that the broker and the aws CLI can share it:
//
//	[ops]
//	aws_access_key_id = AKIAOPS0000000000001
//	aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
//	# optional: the principal's name, by default the profile name
//	jobsbroker_name = operations
//
// Each [profile] section holding aws_access_key_id and
// aws_secret_access_key becomes one [Key]. Sections holding neither (role or
// SSO profiles meant for the CLI) are skipped; other keys are ignored. Key
// names are case-insensitive and "=" or ":" separates key and value, as in
// the CLI. As in the CLI (and unlike many INI dialects), "#" and ";" start a
// comment only at the beginning of a line, and quotes are part of the value.
//
// It is an error wrapping [ErrInvalidCredentials], naming the profile and
// line, when: the file holds no key; a line is not a section header,
// "key = value", comment or continuation; a key appears before the first
// section; a profile or a key within a profile appears twice; a profile has
// only one of the access key id and the secret; jobsbroker_name is empty;
// two profiles use the same access key id.
func LoadCredentials(path string) (*Credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sigv4: load credentials: %w", err)
	}
	c, err := parseCredentials(data)
	if err != nil {
		return nil, fmt.Errorf("sigv4: load credentials %s: %w", path, err)
	}
	return c, nil
}

// iniOptions configures gopkg.in/ini.v1 to read the file the way the AWS
// CLI's parser (Python's configparser) does, and to keep what it would
// otherwise merge silently (repeated sections and keys) so that we can
// reject it.
var iniOptions = ini.LoadOptions{
	InsensitiveKeys:            true, // configparser lower-cases option names
	IgnoreInlineComment:        true, // configparser has no inline comments
	IgnoreContinuation:         true, // no backslash continuation ...
	AllowPythonMultilineValues: true, // ... but indented continuation lines
	PreserveSurroundedQuote:    true, // quotes are part of the value
	KeyValueDelimiters:         "=:",
	AllowShadows:               true, // repeated keys are kept ...
	AllowDuplicateShadowValues: true, // ... even with equal values
	AllowNonUniqueSections:     true, // repeated sections are kept
}

func parseCredentials(data []byte) (*Credentials, error) {
	lines := scanINILines(data)
	f, err := ini.LoadSources(iniOptions, data)
	if err != nil {
		// ini's messages quote the offending line, which may hold a
		// secret: report where it is instead of what it says.
		if lines.firstBad > 0 {
			return nil, fmt.Errorf("%w: line %d: not a section header, \"key = value\" line or comment", ErrInvalidCredentials, lines.firstBad)
		}
		return nil, fmt.Errorf("%w: cannot parse as INI", ErrInvalidCredentials)
	}

	sections := f.Sections()
	// sections[0] is the implicit section holding lines before the first
	// header; every header line then opens one more section, in order.
	lineOf := func(i int) string {
		if len(lines.headers) == len(sections)-1 && i >= 1 {
			return fmt.Sprintf("line %d: ", lines.headers[i-1])
		}
		return ""
	}

	var keys []Key
	profileOf := map[string]string{} // access key id -> profile
	seen := map[string]int{}         // profile -> index in sections
	for i, sec := range sections {
		name := sec.Name()
		if name == ini.DefaultSection {
			if len(sec.Keys()) > 0 {
				where := lineOf(i)
				if i == 0 && lines.firstOrphan > 0 {
					where = fmt.Sprintf("line %d: ", lines.firstOrphan)
				}
				return nil, fmt.Errorf("%w: %skeys outside a [profile] section (or in [DEFAULT]) are not supported", ErrInvalidCredentials, where)
			}
			continue
		}
		if j, dup := seen[name]; dup {
			return nil, fmt.Errorf("%w: %sprofile [%s] appears twice (first at %s)", ErrInvalidCredentials, lineOf(i), name, strings.TrimSuffix(lineOf(j), ": "))
		}
		seen[name] = i

		values := map[string]string{}
		for _, k := range sec.Keys() {
			if len(k.ValueWithShadows()) > 1 {
				return nil, fmt.Errorf("%w: %sprofile [%s]: %s is set twice", ErrInvalidCredentials, lineOf(i), name, k.Name())
			}
			values[k.Name()] = k.Value()
		}
		id, hasID := values[iniAccessKeyID]
		secret, hasSecret := values[iniSecretKey]
		if !hasID && !hasSecret {
			continue // not a static-key profile; the CLI may use it
		}
		key := Key{AccessKeyID: id, SecretAccessKey: secret, Name: name}
		if n, ok := values[iniName]; ok {
			key.Name = n
		}
		switch {
		case !hasSecret || secret == "":
			return nil, fmt.Errorf("%w: %sprofile [%s]: missing %s", ErrInvalidCredentials, lineOf(i), name, iniSecretKey)
		case !hasID || id == "":
			return nil, fmt.Errorf("%w: %sprofile [%s]: missing %s", ErrInvalidCredentials, lineOf(i), name, iniAccessKeyID)
		}
		if err := validateKey(key); err != nil {
			return nil, fmt.Errorf("%w: %sprofile [%s]: %w", ErrInvalidCredentials, lineOf(i), name, err)
		}
		if other, dup := profileOf[id]; dup {
			return nil, fmt.Errorf("%w: %sprofile [%s]: access key id %q is already used by profile [%s]", ErrInvalidCredentials, lineOf(i), name, id, other)
		}
		profileOf[id] = name
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no profile with %s and %s", ErrInvalidCredentials, iniAccessKeyID, iniSecretKey)
	}
	return NewCredentials(keys...)
}

// validateKey checks the fields of one key; the error names no secret.
func validateKey(k Key) error {
	if err := validAccessKeyID(k.AccessKeyID); err != nil {
		return err
	}
	if k.SecretAccessKey == "" {
		return errors.New("empty secret access key")
	}
	if k.Name == "" {
		return errors.New("empty principal name")
	}
	return nil
}

// validAccessKeyID accepts the characters AWS access key ids use plus "."
// and "-", none of which clash with the "/" and "," of Credential=.
func validAccessKeyID(id string) error {
	if id == "" {
		return errors.New("empty access key id")
	}
	if len(id) > maxAccessKeyIDLen {
		return fmt.Errorf("access key id longer than %d characters", maxAccessKeyIDLen)
	}
	for _, c := range []byte(id) {
		if !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return fmt.Errorf("access key id %q: only letters, digits, '_', '.' and '-' are allowed", id)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// iniLines locates lines for error messages; the ini library reports no
// line numbers.
type iniLines struct {
	headers     []int // 1-based line numbers of section headers, in order
	firstBad    int   // first line that is neither blank, comment, header, key = value nor continuation
	firstOrphan int   // first key line before any header
}

func scanINILines(data []byte) iniLines {
	var out iniLines
	inKey := false // a continuation line may follow
	for n, raw := range bytes.Split(data, []byte("\n")) {
		lineNo := n + 1
		line := bytes.TrimRight(raw, "\r")
		trimmed := bytes.TrimLeftFunc(line, unicode.IsSpace)
		indented := len(trimmed) < len(line)
		switch {
		case len(trimmed) == 0:
			// blank
		case trimmed[0] == '#' || trimmed[0] == ';':
			// comment
		case indented && inKey:
			// continuation of the previous value
		case trimmed[0] == '[':
			out.headers = append(out.headers, lineNo)
			inKey = false
			if bytes.LastIndexByte(trimmed, ']') < 2 && out.firstBad == 0 {
				out.firstBad = lineNo // unclosed or empty header
			}
		default:
			if i := bytes.IndexAny(trimmed, "=:"); i <= 0 {
				if out.firstBad == 0 {
					out.firstBad = lineNo
				}
				continue
			}
			inKey = true
			if len(out.headers) == 0 && out.firstOrphan == 0 {
				out.firstOrphan = lineNo
			}
		}
	}
	return out
}
