// Package clock abstracts time so that timers, rollouts and schedules can be
// tested in milliseconds. Production code uses Real; tests use a Fake that
// only moves when told to.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires on its channel after d.
	NewTimer(d time.Duration) Timer
	// TimerAt returns a timer that fires when the clock reaches t (at once
	// if it already has). Prefer it to NewTimer(t.Sub(Now())), which races
	// with a clock that moves between the two calls.
	TimerAt(t time.Time) Timer
}

// Timer is the part of time.Timer that callers need.
type Timer interface {
	// C returns the channel the timer fires on.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was active.
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now.
func (Real) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// TimerAt wraps time.NewTimer(time.Until(t)).
func (Real) TimerAt(t time.Time) Timer { return realTimer{time.NewTimer(time.Until(t))} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Fake is a manually advanced clock for tests. The zero value is not usable;
// create one with NewFake.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer that fires when the fake clock reaches now+d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.timerAt(f.now.Add(d))
}

// TimerAt returns a timer that fires when the fake clock reaches t.
func (f *Fake) TimerAt(t time.Time) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.timerAt(t)
}

func (f *Fake) timerAt(at time.Time) *fakeTimer {
	t := &fakeTimer{f: f, at: at, c: make(chan time.Time, 1)}
	if !at.After(f.now) {
		t.c <- f.now
		return t
	}
	f.timers = append(f.timers, t)
	return t
}

// Advance moves the clock forward by d and fires every timer that is due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.timers[:0]
	for _, t := range f.timers {
		if !t.at.After(f.now) {
			select {
			case t.c <- f.now:
			default:
			}
			continue
		}
		kept = append(kept, t)
	}
	f.timers = kept
}

// Set moves the clock to t (forward only) and fires due timers.
func (f *Fake) Set(t time.Time) {
	if d := t.Sub(f.Now()); d > 0 {
		f.Advance(d)
	}
}

// Waiters returns how many timers are armed and not yet fired, so tests can
// wait until a goroutine is sleeping before advancing the clock.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

type fakeTimer struct {
	f  *Fake
	at time.Time
	c  chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	for i, x := range t.f.timers {
		if x == t {
			t.f.timers = append(t.f.timers[:i], t.f.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Offset is a wall clock shifted by a fixed duration. It exists so that a
// test can restart the broker "later" and watch timers that expired while
// it was down fire at once.
type Offset struct {
	By time.Duration
}

// Now returns the shifted time.
func (o Offset) Now() time.Time { return time.Now().Add(o.By) }

// NewTimer wraps time.NewTimer.
func (o Offset) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// TimerAt fires when the shifted clock reaches t.
func (o Offset) TimerAt(t time.Time) Timer { return realTimer{time.NewTimer(t.Sub(o.Now()))} }
