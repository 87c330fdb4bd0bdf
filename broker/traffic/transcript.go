package traffic

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// FaultDirection marks a transcript line that records a fault acting on a
// message (see jobshook/faults) rather than a message.
const FaultDirection Direction = "fault"

// Defaults for TranscriptOptions.
const (
	// DefaultTranscriptPayload keeps payloads whole up to AWS IoT's
	// largest message, 128 KB.
	DefaultTranscriptPayload = 128 << 10
	// DefaultTranscriptLines is how many lines per thing are kept in
	// memory.
	DefaultTranscriptLines = 10_000
)

// maxOpenFiles bounds the transcript files kept open; past it a line is
// written by opening the file, appending and closing it.
const maxOpenFiles = 256

// TranscriptOptions configures Transcripts; zero fields take the defaults.
type TranscriptOptions struct {
	// Dir, when set, gets one file per thing, THING.jsonl, a line
	// appended (with one write) as each message is recorded, so that the
	// file is complete whatever happens to the process reading it.
	Dir string
	// MaxPayload is how many bytes of a payload are kept (default 128 KB:
	// whole).
	MaxPayload int
	// Lines is how many lines per thing are kept in memory for Lines
	// (default 10,000); files keep them all.
	Lines int
	// Now stamps lines (default time.Now).
	Now func() time.Time
	// Logger hears about files that cannot be written (once per thing).
	Logger *slog.Logger
}

// Line is one line of a transcript: a message a device sent or was sent,
// or a fault acting on one.
type Line struct {
	// Seq numbers the thing's lines from 1, in order.
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Thing     string    `json:"thing"`
	Direction Direction `json:"direction"`
	ClientID  string    `json:"clientId,omitempty"`
	Topic     string    `json:"topic,omitempty"`
	// Payload is the message's payload (cut to MaxPayload bytes, then
	// Truncated is set); for a fault, the message it acted on.
	Payload   string `json:"payload,omitempty"`
	Size      int    `json:"size"`
	Truncated bool   `json:"truncated,omitempty"`
	// Fault is the fault that acted (its rule), on a fault line.
	Fault json.RawMessage `json:"fault,omitempty"`
}

// Transcripts records every jobs message of each thing, in order: the
// requests its devices publish, the replies and notifications they are
// sent, and the faults that act on them. It is a Sink for the traffic
// Hook, and is safe for concurrent use.
//
// Unlike a Recorder it keeps everything (up to Lines per thing in memory,
// all of it in files), so it is for test brokers, not for a fleet.
type Transcripts struct {
	opts   TranscriptOptions
	mu     sync.RWMutex
	things map[string]*transcript
	open   atomic.Int32 // files held open
}

// transcript is one thing's.
type transcript struct {
	mu     sync.Mutex
	seq    int64
	lines  []Line // a ring of the last opts.Lines
	next   int
	file   *os.File
	path   string // "" when the thing gets no file
	failed bool
}

// NewTranscripts returns Transcripts, creating opts.Dir if needed.
func NewTranscripts(opts TranscriptOptions) (*Transcripts, error) {
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = DefaultTranscriptPayload
	}
	if opts.Lines <= 0 {
		opts.Lines = DefaultTranscriptLines
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("create the transcript directory: %w", err)
		}
	}
	return &Transcripts{opts: opts, things: map[string]*transcript{}}, nil
}

// Record adds a message to thing's transcript.
func (t *Transcripts) Record(thing string, dir Direction, clientID, topic string, payload []byte) {
	t.add(Line{Thing: thing, Direction: dir, ClientID: clientID, Topic: topic}, payload)
}

// RecordFault adds to thing's transcript a fault acting on a message:
// fault is its rule (encoded as JSON), topic and payload the message.
func (t *Transcripts) RecordFault(thing, clientID, topic string, fault any, payload []byte) {
	rule, err := json.Marshal(fault)
	if err != nil {
		rule = json.RawMessage(`{}`)
	}
	t.add(Line{Thing: thing, Direction: FaultDirection, ClientID: clientID, Topic: topic, Fault: rule}, payload)
}

func (t *Transcripts) add(l Line, payload []byte) {
	l.Size = len(payload)
	if n := len(payload); n > t.opts.MaxPayload {
		payload, l.Truncated = payload[:t.opts.MaxPayload], true
	}
	l.Payload = string(payload)
	tr := t.get(l.Thing)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.seq++
	l.Seq, l.Time = tr.seq, t.opts.Now()
	if len(tr.lines) < t.opts.Lines {
		tr.lines = append(tr.lines, l)
	} else {
		tr.lines[tr.next] = l
		tr.next = (tr.next + 1) % len(tr.lines)
	}
	if tr.path != "" && !tr.failed {
		t.write(tr, l)
	}
}

func (t *Transcripts) get(thing string) *transcript {
	t.mu.RLock()
	tr := t.things[thing]
	t.mu.RUnlock()
	if tr != nil {
		return tr
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr = t.things[thing]; tr == nil {
		tr = &transcript{}
		if t.opts.Dir != "" && fileSafe(thing) {
			tr.path = filepath.Join(t.opts.Dir, thing+".jsonl")
		}
		t.things[thing] = tr
	}
	return tr
}

// fileSafe reports whether a thing name can be a file name as it is: AWS
// IoT's thing names are [a-zA-Z0-9:_-]+, and the topics of other names are
// answered InvalidTopic (their lines stay in memory).
func fileSafe(thing string) bool {
	if thing == "" || len(thing) > 128 {
		return false
	}
	for _, c := range thing {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// write appends l to tr's file with one write. tr.mu is held.
func (t *Transcripts) write(tr *transcript, l Line) {
	b, err := json.Marshal(l)
	if err == nil {
		b = append(b, '\n')
		f := tr.file
		if f == nil {
			f, err = os.OpenFile(tr.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		}
		if err == nil {
			_, err = f.Write(b)
			switch {
			case tr.file != nil:
			case t.open.Add(1) <= maxOpenFiles:
				tr.file = f // kept open for the next line
			default:
				t.open.Add(-1)
				f.Close()
			}
		}
	}
	if err != nil {
		tr.failed = true
		t.opts.Logger.Error("cannot write a transcript file; its thing's transcript goes on in memory only", "file", tr.path, "error", err)
	}
}

// Lines returns thing's lines after seq (0: all kept in memory), oldest
// first; nil on nil Transcripts.
func (t *Transcripts) Lines(thing string, after int64) []Line {
	if t == nil {
		return nil
	}
	t.mu.RLock()
	tr := t.things[thing]
	t.mu.RUnlock()
	if tr == nil {
		return nil
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make([]Line, 0, len(tr.lines))
	for i := range tr.lines {
		if l := tr.lines[(tr.next+i)%len(tr.lines)]; l.Seq > after {
			out = append(out, l)
		}
	}
	return out
}

// Close closes the open transcript files.
func (t *Transcripts) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var first error
	for _, tr := range t.things {
		tr.mu.Lock()
		if tr.file != nil {
			if err := tr.file.Close(); err != nil && first == nil {
				first = err
			}
			tr.file = nil
		}
		tr.failed = true // nothing more is written
		tr.mu.Unlock()
	}
	return first
}
