package badger

import "time"

// A synced commit costs about the same whatever it carries: the flush of
// the memtable's write-ahead log, the page faults of writing to the log
// again after it, a flush of the value log (Badger's writer does one even
// when the commit put nothing there) and the handoffs to Badger's writer
// and back, on the machine of BENCHMARKS.md about 170 µs of CPU. Below the
// peak the committer is never idle for long and commits whatever arrived
// while it was busy, a handful of operations at a time, and pays that
// again and again: at 7,000 operations a second, 9 a commit, an eighth of
// the broker's CPU went to it (BENCHMARKS.md, "Commits that wait for
// company").
//
// So while operations arrive fast, the committer waits a little, up to
// Options.CommitDelay, for more of them to join the commit, as
// PostgreSQL's commit_delay does while other transactions are active.
// When they arrive slowly, waiting would only add to each one's latency,
// so it does not. Fast arrivals are not enough, though. Devices of a
// fleet send when they will, so a wait brings about what their rate
// predicts; but callers that each wait for their answer before sending
// again (a few test devices, an API client's workers) arrive in a burst
// after each commit and are in the batch already, so a wait brings far
// fewer and only slows them all. So a wait that brought less than half
// of what the rate predicted makes the committer commit without waiting
// for the next 1, 2, 4, ... up to paceMaxSkip batches before it tries
// again; one that paid resets that.

const (
	// paceWindow is the span over which the committer counts the
	// operations it takes, to know how fast they arrive.
	paceWindow = 10 * time.Millisecond
	// paceMinGain is how many more operations a wait must be expected to
	// bring for the committer to wait.
	paceMinGain = 4
	// paceMaxSkip bounds how many batches the committer commits without
	// waiting after waits that did not pay, before it tries again.
	paceMaxSkip = 256
)

// A pacer tells the committer whether to wait for more operations before
// it commits. It belongs to the committer goroutine.
type pacer struct {
	delay  time.Duration // the longest wait; 0: never wait
	start  time.Time     // start of the window being counted
	count  int           // operations taken in that window
	rate   float64       // operations a second over the last whole window
	skip   int           // batches still to commit without waiting
	fails  int           // waits in a row that did not pay
	expect float64       // operations the wait under way should bring
}

// took records that the committer has just taken n operations, at now.
func (p *pacer) took(now time.Time, n int) {
	if p.start.IsZero() {
		p.start = now
	}
	p.count += n
	if el := now.Sub(p.start); el >= paceWindow {
		p.rate = float64(p.count) / el.Seconds()
		p.start, p.count = now, 0
	}
}

// wait is how long the committer should wait for more operations before
// it commits what it holds: Options.CommitDelay if at the rate they have
// been arriving at least paceMinGain more would join in that time and no
// recent wait failed to bring them, none otherwise. A window that closes
// after a lull takes in the lull, so the rate it gives is low.
func (p *pacer) wait() time.Duration {
	expect := p.rate * p.delay.Seconds()
	if p.delay <= 0 || expect < paceMinGain {
		return 0
	}
	if p.skip > 0 {
		p.skip--
		return 0
	}
	p.expect = expect
	return p.delay
}

// waited records that a wait brought n more operations, at now.
func (p *pacer) waited(now time.Time, n int) {
	p.took(now, n)
	if 2*float64(n) >= p.expect {
		p.fails = 0
		return
	}
	p.fails++
	p.skip = min(1<<min(p.fails-1, 30), paceMaxSkip)
}
