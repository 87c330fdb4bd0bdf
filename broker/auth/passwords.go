package auth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/jobsbroker/jobsbroker/topics"
)

// Passwords are the logins of ModePassword: thing names with bcrypt hashes
// of their passwords.
//
// The file has one "thing:hash" per line, the format of `htpasswd -B` and
// of `jobsbroker passwd`; blank lines and lines starting with # are
// ignored.
type Passwords struct {
	hashes map[string][]byte
	// verified remembers an HMAC of each thing's last accepted password, so
	// that a reconnecting fleet does not cost a bcrypt comparison (tens of
	// milliseconds of CPU) per connection. It lives as long as this
	// Passwords: reloading the file forgets it.
	verified sync.Map // thing -> [32]byte
	key      [32]byte
	// dummy is a hash of no password at the cost most of the file's
	// hashes have: an unknown thing is checked against it, so that its
	// refusal takes as long as a wrong password of a known thing.
	dummy func() []byte
}

// ErrBadLogin is returned for an unknown thing or a wrong password.
var ErrBadLogin = errors.New("unknown thing or wrong password")

// LoadPasswords reads a password file.
func LoadPasswords(path string) (*Passwords, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read password file: %w", err)
	}
	p, err := ParsePasswords(b)
	if err != nil {
		return nil, fmt.Errorf("password file %s: %w", path, err)
	}
	return p, nil
}

// ParsePasswords parses the contents of a password file.
func ParsePasswords(b []byte) (*Passwords, error) {
	p := &Passwords{hashes: map[string][]byte{}}
	costs := map[int]int{} // bcrypt cost -> how many hashes have it
	if _, err := rand.Read(p.key[:]); err != nil {
		return nil, fmt.Errorf("password cache key: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		thing, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want thing:bcrypt-hash", n)
		}
		if !topics.ValidThingName(thing) {
			return nil, fmt.Errorf("line %d: %q is not a thing name (1-128 of [a-zA-Z0-9:_-])", n, thing)
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): not a bcrypt hash: %w", n, thing, err)
		}
		costs[cost]++
		if _, dup := p.hashes[thing]; dup {
			return nil, fmt.Errorf("line %d: %s is listed twice", n, thing)
		}
		p.hashes[thing] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	cost := bcrypt.DefaultCost
	for c, n := range costs {
		if n > costs[cost] || (n == costs[cost] && c > cost) {
			cost = c
		}
	}
	p.dummy = sync.OnceValue(func() []byte {
		h, _ := bcrypt.GenerateFromPassword([]byte("not a password of any thing"), cost)
		return h
	})
	return p, nil
}

// Len returns how many things have a password.
func (p *Passwords) Len() int { return len(p.hashes) }

// Check verifies a thing's password.
func (p *Passwords) Check(thing string, password []byte) error {
	hash, ok := p.hashes[thing]
	if !ok {
		// Spend the time a real check takes, so that timing does not tell
		// which things exist.
		_ = bcrypt.CompareHashAndPassword(p.dummy(), password)
		return ErrBadLogin
	}
	mac := hmac.New(sha256.New, p.key[:])
	mac.Write(password)
	var sum [32]byte
	mac.Sum(sum[:0])
	if v, ok := p.verified.Load(thing); ok && hmac.Equal(sum[:], v.(*[32]byte)[:]) {
		return nil
	}
	if err := bcrypt.CompareHashAndPassword(hash, password); err != nil {
		return ErrBadLogin
	}
	p.verified.Store(thing, &sum)
	return nil
}

// Owner returns the thing a client ID belongs to under identity password:
// the thing of that name, or else the thing whose name is the client ID's
// part before a "-" (pump-42-a belongs to pump-42 if there is one, else
// to pump). Of several such things the longest name wins, so that every
// client ID has at most one owner. ok is false when no thing owns it.
func (p *Passwords) Owner(clientID string) (thing string, ok bool) {
	for cand := clientID; cand != ""; {
		if _, ok := p.hashes[cand]; ok {
			return cand, true
		}
		i := strings.LastIndexByte(cand, '-')
		if i < 0 {
			break
		}
		cand = cand[:i]
	}
	return "", false
}

// PasswordLine returns a password file line for thing.
func PasswordLine(thing string, password []byte) (string, error) {
	if !topics.ValidThingName(thing) {
		return "", fmt.Errorf("%q is not a thing name (1-128 of [a-zA-Z0-9:_-])", thing)
	}
	hash, err := bcrypt.GenerateFromPassword(password, bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return thing + ":" + string(hash), nil
}
