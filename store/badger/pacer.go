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
// so it does not: a lone device is answered as soon as its commit is done.

const (
	// paceWindow is the span over which the committer counts the
	// operations it takes, to know how fast they arrive.
	paceWindow = 10 * time.Millisecond
	// paceMinGain is how many more operations a wait must be expected to
	// bring before the committer waits.
	paceMinGain = 4
)

// A pacer tells the committer whether to wait for more operations before
// it commits. It belongs to the committer goroutine.
type pacer struct {
	delay time.Duration // the longest wait; 0: never wait
	start time.Time     // start of the window being counted
	count int           // operations taken in that window
	rate  float64       // operations a second over the last whole window
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
// been arriving at least paceMinGain more would join in that time, none
// otherwise. After a lull the window that closes takes in the lull, so the
// rate it gives is low and the first operation is not kept waiting.
func (p *pacer) wait() time.Duration {
	if p.delay <= 0 || p.rate*p.delay.Seconds() < paceMinGain {
		return 0
	}
	return p.delay
}
