package auth

import (
	"net"
	"sync"
	"time"
)

// DefaultLoginBackoff is the default of Options.LoginBackoff.
const DefaultLoginBackoff = 30 * time.Second

// How failed logins turn into waits. A key (an identity, or a source
// address) may fail freeFailures times in a row at no cost; each further
// failure doubles its wait, from firstWait up to the configured longest.
// A key that has not failed for forgetAfter longest waits starts afresh.
const (
	identityFreeFailures = 3
	sourceFreeFailures   = 10
	firstWait            = time.Second
	forgetAfter          = 4
	maxBackoffKeys       = 100_000 // per kind; beyond it, keys that are waiting for nothing are dropped
)

// loginBackoff slows down password guessing: after repeated failed logins,
// an identity, and separately a source address, must wait before its next
// login is even checked. A login refused for waiting costs no bcrypt
// comparison, so a guesser spends the broker's time no faster than the
// waits allow. The wait of an identity ends early when it logs in
// successfully; so does that of its source address.
type loginBackoff struct {
	longest time.Duration // 0: off
	now     func() time.Time

	mu       sync.Mutex
	identity map[string]*failures
	source   map[string]*failures
}

// failures is one key's record.
type failures struct {
	n     int       // failures in a row
	last  time.Time // the latest
	until time.Time // no login is checked before this
}

func newLoginBackoff(longest time.Duration) *loginBackoff {
	return &loginBackoff{longest: max(longest, 0), now: time.Now,
		identity: map[string]*failures{}, source: map[string]*failures{}}
}

// wait reports how long a login of identity from remote must still wait,
// 0 when it may be checked now.
func (b *loginBackoff) wait(identity, remote string) time.Duration {
	if b.longest == 0 {
		return 0
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var w time.Duration
	for _, f := range []*failures{b.identity[identity], b.source[sourceOf(remote)]} {
		if f != nil {
			w = max(w, f.until.Sub(now))
		}
	}
	return w
}

// failed records a failed login of identity from remote.
func (b *loginBackoff) failed(identity, remote string) {
	if b.longest == 0 {
		return
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.record(b.identity, identity, identityFreeFailures, now)
	b.record(b.source, sourceOf(remote), sourceFreeFailures, now)
}

// succeeded forgets the failures of identity and of remote's address.
func (b *loginBackoff) succeeded(identity, remote string) {
	if b.longest == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.identity, identity)
	delete(b.source, sourceOf(remote))
}

// record counts one failure of key. Called with b.mu held.
func (b *loginBackoff) record(m map[string]*failures, key string, free int, now time.Time) {
	f := m[key]
	if f != nil && now.Sub(f.last) > forgetAfter*b.longest {
		f = nil // quiet long enough: start afresh
	}
	if f == nil {
		if len(m) >= maxBackoffKeys {
			b.forget(m, now)
		}
		f = &failures{}
		m[key] = f
	}
	f.n++
	f.last = now
	if over := f.n - free; over > 0 {
		w := b.longest
		if over <= 30 {
			w = min(b.longest, firstWait<<(over-1))
		}
		f.until = now.Add(w)
	}
}

// forget drops the keys that have been quiet long enough to start afresh
// anyway and, if that is not enough, those that are not waiting now.
// Called with b.mu held.
func (b *loginBackoff) forget(m map[string]*failures, now time.Time) {
	for k, f := range m {
		if now.Sub(f.last) > forgetAfter*b.longest {
			delete(m, k)
		}
	}
	if len(m) < maxBackoffKeys {
		return
	}
	for k, f := range m {
		if !now.Before(f.until) {
			delete(m, k)
		}
	}
}

// sourceOf is the address part of a remote host:port.
func sourceOf(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}
