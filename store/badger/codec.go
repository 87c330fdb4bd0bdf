package badger

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// Pending executions have a compact binary form rather than JSON: a
// thing's queue entries hold one each, and schema 1 kept a thing's whole
// pending set as one record (a version byte, the number of entries, then
// the entries). An entry is its fields as varints and length-prefixed
// strings; times are Unix nanoseconds, 0 for the zero time.
const pendingCodecV1 = 1

// Status codes of the binary pending form; any other status is written as
// statusOther followed by its name.
const (
	statusQueued     = 0
	statusInProgress = 1
	statusOther      = 0xff
)

var errCorrupt = errors.New("corrupt record")

// appendEntry appends the binary form of one pending execution.
func appendEntry(b []byte, p *store.PendingExecution) []byte {
	b = appendString(b, p.JobID)
	b = binary.AppendVarint(b, p.ExecutionNumber)
	b = appendStatus(b, p.Status)
	b = appendTime(b, p.QueuedAt)
	b = appendTime(b, p.StartedAt)
	b = appendTime(b, p.LastUpdatedAt)
	b = binary.AppendVarint(b, p.VersionNumber)
	b = binary.AppendUvarint(b, p.QueueSeq)
	return binary.AppendUvarint(b, p.JobSeq)
}

func (d *decoder) entry(p *store.PendingExecution) {
	p.JobID = d.string()
	p.ExecutionNumber = d.varint()
	p.Status = d.status()
	p.QueuedAt = d.time()
	p.StartedAt = d.time()
	p.LastUpdatedAt = d.time()
	p.VersionNumber = d.varint()
	p.QueueSeq = d.uvarint()
	p.JobSeq = d.uvarint()
}

// decodeEntry reads one queue entry.
func decodeEntry(b []byte) (store.PendingExecution, error) {
	var p store.PendingExecution
	d := decoder{b: b}
	d.entry(&p)
	if d.bad || len(d.b) != 0 {
		return p, fmt.Errorf("%w: queue entry", errCorrupt)
	}
	return p, nil
}

// appendPending appends a schema-1 pending set.
func appendPending(b []byte, set store.PendingSet) []byte {
	b = append(b, pendingCodecV1)
	b = binary.AppendUvarint(b, uint64(len(set)))
	for i := range set {
		b = appendEntry(b, &set[i])
	}
	return b
}

// decodePending reads a schema-1 pending set (binary, or the JSON of
// earlier versions).
func decodePending(b []byte) (store.PendingSet, error) {
	if len(b) > 0 && b[0] == '[' {
		var set store.PendingSet
		err := json.Unmarshal(b, &set)
		return set, err
	}
	d := decoder{b: b}
	if v := d.byte(); v != pendingCodecV1 {
		return nil, fmt.Errorf("%w: pending set version %d", errCorrupt, v)
	}
	n := d.uvarint()
	if n > uint64(len(b)) { // every entry takes several bytes
		return nil, fmt.Errorf("%w: pending set of %d entries in %d bytes", errCorrupt, n, len(b))
	}
	set := make(store.PendingSet, n)
	for i := range set {
		d.entry(&set[i])
	}
	if d.bad || len(d.b) != 0 {
		return nil, fmt.Errorf("%w: pending set", errCorrupt)
	}
	return set, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

// decoder reads the binary forms; after the first malformed field it
// returns zero values and sets bad.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) fail() { d.bad, d.b = true, nil }

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	v := d.varint()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

// Executions are the records every device operation reads and writes, so
// they have a binary form too (JSON was a tenth of the committer's time):
// execCodecV1, then the fields in order; an execution of a job with a
// namespace is execCodecNS, the same fields and then the namespace.
// Records written as JSON by earlier versions start with '{' and still
// read.
const (
	execCodecV1 = 1
	execCodecNS = 2
)

// appendExecution appends the binary form of an execution.
func appendExecution(b []byte, e *store.Execution) []byte {
	version := byte(execCodecV1)
	if e.Namespace != "" {
		version = execCodecNS
	}
	b = append(b, version)
	b = appendString(b, e.JobID)
	b = appendString(b, e.ThingName)
	b = binary.AppendVarint(b, e.ExecutionNumber)
	b = appendStatus(b, e.Status)
	b = binary.AppendUvarint(b, uint64(len(e.StatusDetails)))
	var buf [10]string // AWS allows 10 pairs: no allocation to sort them
	keys := buf[:0]
	for k := range e.StatusDetails {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(appendString(b, k), e.StatusDetails[k])
	}
	b = appendTime(b, e.QueuedAt)
	b = appendTime(b, e.StartedAt)
	b = appendTime(b, e.LastUpdatedAt)
	b = binary.AppendVarint(b, e.VersionNumber)
	force := byte(0)
	if e.ForceCanceled {
		force = 1
	}
	b = append(b, force)
	b = binary.AppendVarint(b, int64(e.RetryAttempt))
	b = binary.AppendVarint(b, int64(e.FailedRetries))
	b = binary.AppendVarint(b, int64(e.TimedOutRetries))
	b = appendTime(b, e.StepDeadline)
	b = appendTime(b, e.InProgressDeadline)
	b = binary.AppendUvarint(b, e.QueueSeq)
	b = binary.AppendUvarint(b, e.JobSeq)
	if version == execCodecNS {
		b = appendString(b, e.Namespace)
	}
	return b
}

// decodeExecution reads an execution record (binary, or JSON).
func decodeExecution(b []byte, e *store.Execution) error {
	if len(b) > 0 && b[0] == '{' {
		return json.Unmarshal(b, e)
	}
	d := decoder{b: b}
	v := d.byte()
	if v != execCodecV1 && v != execCodecNS {
		return fmt.Errorf("%w: execution version %d", errCorrupt, v)
	}
	e.JobID = d.string()
	e.ThingName = d.string()
	e.ExecutionNumber = d.varint()
	e.Status = d.status()
	if n := d.uvarint(); n > 0 && n <= uint64(len(d.b)) {
		e.StatusDetails = make(map[string]string, n)
		for range n {
			k := d.string()
			e.StatusDetails[k] = d.string()
		}
	} else if n > 0 {
		d.fail()
	}
	e.QueuedAt = d.time()
	e.StartedAt = d.time()
	e.LastUpdatedAt = d.time()
	e.VersionNumber = d.varint()
	e.ForceCanceled = d.byte() == 1
	e.RetryAttempt = int32(d.varint())
	e.FailedRetries = int32(d.varint())
	e.TimedOutRetries = int32(d.varint())
	e.StepDeadline = d.time()
	e.InProgressDeadline = d.time()
	e.QueueSeq = d.uvarint()
	e.JobSeq = d.uvarint()
	if v == execCodecNS {
		if e.Namespace = d.string(); e.Namespace == "" {
			d.fail() // written only when there is one
		}
	}
	if d.bad || len(d.b) != 0 {
		return fmt.Errorf("%w: execution", errCorrupt)
	}
	return nil
}

func appendStatus(b []byte, s store.ExecutionStatus) []byte {
	switch s {
	case store.StatusQueued:
		return append(b, statusQueued)
	case store.StatusInProgress:
		return append(b, statusInProgress)
	}
	return appendString(append(b, statusOther), string(s))
}

func (d *decoder) status() store.ExecutionStatus {
	switch c := d.byte(); c {
	case statusQueued:
		return store.StatusQueued
	case statusInProgress:
		return store.StatusInProgress
	case statusOther:
		return store.ExecutionStatus(d.string())
	}
	d.fail()
	return ""
}

// A job's counts (process details) are rewritten by every device
// operation that moves an execution, so they are binary as well:
// countsCodecV1, then the count of each status of countsOrder, in that
// order, as varints. Records written as JSON by earlier versions start
// with '{' and still read; the next write of the job's counts turns them
// into this form.
const countsCodecV1 = 1

// countsOrder is the order of the counts in countsCodecV1. It is part of
// the format: a new status goes into a new version, not into this list.
var countsOrder = [...]store.ExecutionStatus{store.StatusQueued, store.StatusInProgress, store.StatusSucceeded,
	store.StatusFailed, store.StatusTimedOut, store.StatusRejected, store.StatusRemoved, store.StatusCanceled}

// appendCounts appends the binary form of a job's counts.
func appendCounts(b []byte, p *store.ProcessDetails) []byte {
	b = append(b, countsCodecV1)
	for _, s := range countsOrder {
		b = binary.AppendVarint(b, p.Count(s))
	}
	return b
}

// decodeCounts reads a job's counts (binary, or JSON).
func decodeCounts(b []byte, p *store.ProcessDetails) error {
	*p = store.ProcessDetails{}
	if len(b) > 0 && b[0] == '{' {
		return json.Unmarshal(b, p)
	}
	d := decoder{b: b}
	if v := d.byte(); v != countsCodecV1 {
		return fmt.Errorf("%w: counts version %d", errCorrupt, v)
	}
	for _, s := range countsOrder {
		p.Add(s, d.varint())
	}
	if d.bad || len(d.b) != 0 {
		return fmt.Errorf("%w: counts", errCorrupt)
	}
	return nil
}
