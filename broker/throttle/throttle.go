// Package throttle owns the per-thing request rate: a token bucket for
// each thing that sends requests, shared by the MQTT and HTTP device APIs,
// so that one device cannot starve the others. AWS IoT's own limit is 100
// publishes per second per connection; DefaultRate follows it.
package throttle

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultRate is the default number of requests per second per thing.
const DefaultRate = 100

// idleAfter is how long a thing's bucket is kept after its last request;
// a full bucket carries no state, so dropping it changes nothing.
const idleAfter = time.Minute

// Limiter limits each thing to a steady rate with bursts up to a size.
type Limiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// New returns a limiter of perSecond requests per thing with bursts of
// burst (at least 1). perSecond <= 0 returns nil, which allows everything.
func New(perSecond float64, burst int) *Limiter {
	if perSecond <= 0 {
		return nil
	}
	return &Limiter{limit: rate.Limit(perSecond), burst: max(burst, 1), now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes one request from thing's bucket and reports whether there
// was one to take. A nil Limiter allows everything.
func (l *Limiter) Allow(thing string) bool {
	if l == nil {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > idleAfter {
		for k, b := range l.buckets {
			if now.Sub(b.last) > idleAfter {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[thing]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[thing] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}

// Rate returns the steady rate per thing, 0 for a nil Limiter.
func (l *Limiter) Rate() float64 {
	if l == nil {
		return 0
	}
	return float64(l.limit)
}
