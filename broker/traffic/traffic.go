// Package traffic keeps a short, bounded record of each thing's recent
// AWS IoT Jobs traffic: the requests its devices published on
// $aws/things/{thing}/jobs/..., the replies they were sent, and the notify
// and notify-next messages they received. The console shows it on a
// thing's page.
//
// A Recorder holds a ring of the last few messages per thing for a bounded
// number of things (the most recently active ones), so its memory is fixed
// whatever the fleet. Recording is on the path of every jobs message (mochi
// runs hooks on the publishing client's read goroutine), so it takes one
// sharded lock, a map lookup and a copy into a reused buffer, and allocates
// nothing once a thing's ring is full.
//
// Entries are shaped like lines of a transcript (time, direction, client
// id, topic, payload), so that a per-thing transcript written to files can
// be built on the same Entry and hook.
package traffic

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// Direction says which way a message went.
type Direction string

// The directions of a message, from the broker's point of view.
const (
	// In is a message a client published (a request).
	In Direction = "in"
	// Out is a message the broker sent to a client (a reply or a
	// notification).
	Out Direction = "out"
)

// Defaults for Options.
const (
	DefaultPerThing   = 20
	DefaultThings     = 1024
	DefaultMaxPayload = 256
)

// Entry is one recorded message.
type Entry struct {
	Time      time.Time `json:"time"`
	Direction Direction `json:"direction"`
	ClientID  string    `json:"clientId"`
	Topic     string    `json:"topic"`
	// Payload is the message's payload, cut to Options.MaxPayload bytes.
	Payload string `json:"payload"`
	// Size is the payload's full length in bytes.
	Size int `json:"size"`
}

// Truncated reports whether Payload was cut.
func (e Entry) Truncated() bool { return len(e.Payload) < e.Size }

// Options bounds a Recorder; zero fields take the defaults.
type Options struct {
	// PerThing is how many messages are kept per thing (default 20).
	PerThing int
	// Things is how many things are kept (default 1024); past it the
	// least recently active thing is forgotten.
	Things int
	// MaxPayload is how many bytes of each payload are kept (default 256).
	MaxPayload int
	// Now stamps entries (default time.Now).
	Now func() time.Time
}

const shards = 16

// Recorder keeps the recent traffic of the most recently active things. It
// is safe for concurrent use. The zero value is not usable: use New.
type Recorder struct {
	opts   Options
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu    sync.Mutex
	index map[string]int // thing -> its ring
	rings []ring         // at most max; a forgotten thing's ring is reused
	hand  int            // the clock hand of eviction
	max   int
}

// ring is one thing's last messages.
type ring struct {
	thing string
	slots []slot
	next  int // where the next message goes
	count int
	used  bool // recorded into since the clock hand last passed
}

// slot reuses its payload buffer from one message to the next.
type slot struct {
	at      time.Time
	dir     Direction
	client  string
	topic   string
	payload []byte
	size    int
}

// New returns a Recorder.
func New(opts Options) *Recorder {
	if opts.PerThing <= 0 {
		opts.PerThing = DefaultPerThing
	}
	if opts.Things <= 0 {
		opts.Things = DefaultThings
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Recorder{opts: opts, seed: maphash.MakeSeed()}
	per := max(1, (opts.Things+shards-1)/shards)
	for i := range r.shards {
		r.shards[i].index = make(map[string]int, per)
		r.shards[i].max = per
	}
	return r
}

// Limits returns the options in force.
func (r *Recorder) Limits() Options { return r.opts }

func (r *Recorder) shard(thing string) *shard {
	return &r.shards[maphash.String(r.seed, thing)%shards]
}

// Record keeps one message of thing. The topic and client id strings are
// kept as they are; the payload is copied (up to MaxPayload bytes).
func (r *Recorder) Record(thing string, dir Direction, clientID, topic string, payload []byte) {
	now := r.opts.Now()
	s := r.shard(thing)
	s.mu.Lock()
	i, ok := s.index[thing]
	if !ok {
		i = s.place(r.opts.PerThing)
		s.rings[i].thing = strings.Clone(thing)
		s.index[s.rings[i].thing] = i
	}
	rg := &s.rings[i]
	rg.used = true
	sl := &rg.slots[rg.next]
	rg.next = (rg.next + 1) % len(rg.slots)
	rg.count = min(rg.count+1, len(rg.slots))
	sl.at, sl.dir, sl.client, sl.topic, sl.size = now, dir, clientID, topic, len(payload)
	n := min(len(payload), r.opts.MaxPayload)
	if cap(sl.payload) < n {
		sl.payload = make([]byte, n, r.opts.MaxPayload)
	}
	sl.payload = append(sl.payload[:0], payload[:n]...)
	s.mu.Unlock()
}

// place returns an empty ring for a new thing: a new one while the shard
// has room, else the ring of a thing not recorded into lately, chosen by
// the clock algorithm (an approximation of least recently used that costs
// a step or two per new thing, with no list to maintain per message).
func (s *shard) place(perThing int) int {
	if len(s.rings) < s.max {
		s.rings = append(s.rings, ring{slots: make([]slot, perThing)})
		return len(s.rings) - 1
	}
	for {
		i := s.hand
		s.hand = (s.hand + 1) % len(s.rings)
		rg := &s.rings[i]
		if rg.used {
			rg.used = false
			continue
		}
		delete(s.index, rg.thing)
		rg.next, rg.count = 0, 0
		return i
	}
}

// Recent returns thing's recorded messages, oldest first; nil when none
// are kept.
func (r *Recorder) Recent(thing string) []Entry {
	s := r.shard(thing)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index[thing]
	if !ok {
		return nil
	}
	rg := &s.rings[i]
	out := make([]Entry, 0, rg.count)
	start := (rg.next - rg.count + len(rg.slots)) % len(rg.slots)
	for i := range rg.count {
		sl := &rg.slots[(start+i)%len(rg.slots)]
		out = append(out, Entry{Time: sl.at, Direction: sl.dir, ClientID: sl.client, Topic: sl.topic,
			Payload: string(sl.payload), Size: sl.size})
	}
	return out
}

// Things returns how many things have a record now.
func (r *Recorder) Things() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		n += len(s.index)
		s.mu.Unlock()
	}
	return n
}

// JobsThing returns the thing of a topic under $aws/things/{thing}/jobs, or
// false for any other topic. It only cuts the topic; the thing name is not
// validated (the jobs hook answers invalid ones).
func JobsThing(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, "$aws/things/")
	if !ok {
		return "", false
	}
	thing, rest, ok := strings.Cut(rest, "/")
	if !ok || thing == "" || len(thing) > 128 {
		return "", false
	}
	if rest != "jobs" && !strings.HasPrefix(rest, "jobs/") {
		return "", false
	}
	return thing, true
}
