package badger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Badger replays its write-ahead logs (the memtables' *.mem files) at
// open, and reads the newest value log (*.vlog) to find where it ends. It
// stops at the first entry that does not check out (a bad checksum, a cut
// entry) and drops the rest of the file without a word, even when intact,
// acknowledged transactions follow the damage. Before Badger opens the
// directory, checkLogs reads the same files the same way and, where the
// replay would stop early, looks past the stop for more intact entries:
// that tells a damaged log, whose acknowledged writes are about to be lost,
// from the normal end of a log or from a write a crash interrupted (never
// acknowledged).
//
// The format is Badger v4's (memtable.go, value.go): after a 20-byte
// header (an encryption key id and an IV), entries of a header (meta,
// user meta, then uvarints key length, value length, expiry), the key,
// the value, and a big-endian CRC-32C of all three. In a write-ahead log
// an entry of a transaction has bitTxn set and the transaction ends with
// an entry with bitFinTxn whose value is the commit timestamp.

// ErrDamagedLog is returned by Open under StrictRecovery when a log is
// damaged.
var ErrDamagedLog = errors.New("the store's write-ahead log or value log is damaged")

// LogDamage describes one log file whose replay stops before its end.
type LogDamage struct {
	// File is the file's path, Kind "write-ahead log" or "value log".
	File, Kind string
	// Size is the file's size and ValidEnd the offset where the intact
	// entries end. Badger drops what lies beyond in a write-ahead log and
	// in the newest value log (it cuts that one there); in an older value
	// log, the values beyond it cannot be read up to ReadableFrom, or to
	// the end of the file when that is 0.
	Size, ValidEnd int64
	// Following is how many intact entries were found after the damage:
	// writes that were acknowledged and are lost. -1 when the search for
	// them gave up.
	Following int
	// ReadableFrom, when not 0, is where intact entries resume in a value
	// log Badger no longer writes: Badger neither replays nor cuts such a
	// file and reads its values at any offset, so only the values between
	// ValidEnd and ReadableFrom are lost, and the Readable intact entries
	// from ReadableFrom on are not (Following is 0 then).
	ReadableFrom int64
	Readable     int
	// Problem says what is wrong, in words.
	Problem string
}

func (d LogDamage) String() string {
	lost := "no intact entries follow"
	switch {
	case d.ReadableFrom > 0:
		return fmt.Sprintf("%s %s: %s; the entries from offset %d to %d of %d bytes are lost; the %d intact entries after them remain readable",
			d.Kind, filepath.Base(d.File), d.Problem, d.ValidEnd, d.ReadableFrom, d.Size, d.Readable)
	case d.Following < 0:
		lost = "could not tell whether intact entries follow"
	case d.Following > 0:
		lost = fmt.Sprintf("%d intact entries after it are lost", d.Following)
	}
	return fmt.Sprintf("%s %s: %s; the intact entries end at offset %d of %d bytes; %s",
		d.Kind, filepath.Base(d.File), d.Problem, d.ValidEnd, d.Size, lost)
}

// RecoveryReport is what Open found in the store's logs.
type RecoveryReport struct {
	// Damaged are the logs whose acknowledged writes are (or may be) lost.
	Damaged []LogDamage
	// Interrupted are logs that end in a write a crash interrupted: the
	// write was never acknowledged, and dropping it loses nothing.
	Interrupted []LogDamage
}

const (
	logHeaderSize = 20 // Badger's vlogHeaderSize
	bitTxn        = 1 << 6
	bitFinTxn     = 1 << 7
	maxKeyLen     = 1 << 16
	// Meta bits Badger v4 does not use.
	unknownMeta = 1<<4 | 1<<5
	// How far past a stop checkLogs looks for intact entries, at most,
	// and how many bytes it checksums doing so.
	resyncLimit = 256 << 20
	resyncWork  = 1 << 30
	// The largest entry the search considers: larger ones are taken for
	// noise (an entry of this store is at most a Badger batch, a few MB).
	maxResyncEntry = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recoverLogs checks the logs of the store in opts.Dir before Badger
// replays them, and reports what it finds: an error log line per damaged
// file (naming it and what is dropped), a warning per interrupted write.
// Under StrictRecovery a damaged log is an error, and Badger does not
// open (or cut) anything.
func recoverLogs(opts Options) (RecoveryReport, error) {
	rep, err := checkLogs(opts.Dir)
	if err != nil {
		return rep, fmt.Errorf("check the store's logs: %w", err)
	}
	for _, d := range rep.Interrupted {
		opts.Logger.Warn("dropping a write a crash interrupted (it was never acknowledged)",
			"file", d.File, "kind", d.Kind, "offset", d.ValidEnd, "problem", d.Problem)
	}
	if len(rep.Damaged) == 0 {
		return rep, nil
	}
	what := make([]string, len(rep.Damaged))
	for i, d := range rep.Damaged {
		what[i] = d.String()
		attrs := []any{"file", d.File, "kind", d.Kind, "offset", d.ValidEnd, "size", d.Size,
			"entries_lost", d.Following, "problem", d.Problem}
		dropping := "dropping everything from the damage on"
		if d.ReadableFrom > 0 {
			attrs = append(attrs, "readable_from", d.ReadableFrom, "entries_readable", d.Readable)
			dropping = "the values in the damaged part are lost, those after it remain readable"
		}
		if opts.StrictRecovery {
			opts.Logger.Error("the store's log is damaged: refusing to open the store (strict recovery)", attrs...)
		} else {
			opts.Logger.Error("the store's log is damaged: "+dropping, attrs...)
		}
	}
	if opts.StrictRecovery {
		return rep, fmt.Errorf("%w (strict recovery: the files are left as they are; restore a backup, "+
			"or start without strict recovery to drop the damaged part): %s", ErrDamagedLog, strings.Join(what, "; "))
	}
	return rep, nil
}

// Recovery returns what Open found in the store's logs.
func (s *Store) Recovery() RecoveryReport { return s.recovery }

// DamagedLogFiles is how many damaged log files Open found
// (store.RecoveryReporter).
func (s *Store) DamagedLogFiles() int { return len(s.recovery.Damaged) }

// checkLogs checks every write-ahead log and value log in dir.
func checkLogs(dir string) (RecoveryReport, error) {
	var rep RecoveryReport
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return rep, nil
	}
	if err != nil {
		return rep, fmt.Errorf("read store directory: %w", err)
	}
	var vlogs []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir():
		case strings.HasSuffix(name, ".mem"):
			if err := checkLog(&rep, filepath.Join(dir, name), "write-ahead log", true); err != nil {
				return rep, err
			}
		case strings.HasSuffix(name, ".vlog"):
			vlogs = append(vlogs, name)
		}
	}
	slices.SortFunc(vlogs, func(a, b string) int { return logID(a) - logID(b) })
	for i, name := range vlogs {
		// Only the newest value log is written to; the others were cut to
		// their exact end when Badger moved on.
		if err := checkLog(&rep, filepath.Join(dir, name), "value log", i == len(vlogs)-1); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func logID(name string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSuffix(name, ".vlog"), ".mem"))
	return n
}

// checkLog checks one log file and adds what it finds to rep. live says
// the file was being written to (a memtable's log, the newest value log):
// it is allocated larger than its contents, and may end in a write a
// crash interrupted.
func checkLog(rep *RecoveryReport, path, kind string, live bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	d := LogDamage{File: path, Kind: kind, Size: st.Size()}
	switch {
	case d.Size == 0:
		d.Problem = "the file is empty (Badger also leaves an empty memtable log when it cannot create one, and then nothing is lost)"
		rep.Damaged = append(rep.Damaged, d)
		return nil
	case d.Size < logHeaderSize:
		d.Problem = "the file is shorter than its header"
		rep.Damaged = append(rep.Damaged, d)
		return nil
	}
	r := &windowReader{f: f, size: d.Size}
	hdr, err := r.bytesAt(0, logHeaderSize)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if binary.BigEndian.Uint64(hdr) != 0 {
		return nil // encrypted: this store never encrypts, and cannot check it
	}
	end, at, stop, err := replay(r, logHeaderSize)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	d.ValidEnd = end
	if stop == stopEOF {
		return nil // intact to the last byte
	}
	// The replay stopped before the end of the file. Is there more? The
	// search starts past the entry it stopped at (the entries of an
	// unfinished transaction before it are intact, and no sign of damage),
	// or at it when the entry itself is intact but out of place.
	from := at + 1
	if stop == stopBadTxn {
		from = at
	}
	next, found, err := findEntries(r, from)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	switch {
	case found && next >= 0 && kind == "value log" && !live:
		d.ReadableFrom, d.Readable = next, countEntries(r, next)
		d.Problem = stop.String() + ", and intact entries follow"
		rep.Damaged = append(rep.Damaged, d)
	case found && next >= 0:
		d.Following = countEntries(r, next)
		d.Problem = stop.String() + ", and intact entries follow"
		rep.Damaged = append(rep.Damaged, d)
	case found:
		d.Following = -1
		d.Problem = stop.String() + ", and more data follows than the search went through"
		rep.Damaged = append(rep.Damaged, d)
	case stop == stopCut:
		d.Problem = stop.String()
		rep.Damaged = append(rep.Damaged, d)
	case live && stop == stopZero:
		// The normal end of a log being written: zeros after its last entry.
	case live:
		d.Problem = stop.String() + ": a write a crash interrupted"
		rep.Interrupted = append(rep.Interrupted, d)
	default:
		// A finished value log ends at its last entry, with no zeros and
		// no partial write.
		d.Problem = stop.String()
		rep.Damaged = append(rep.Damaged, d)
	}
	return nil
}

// stopReason is why a replay stopped.
type stopReason int

const (
	stopEOF        stopReason = iota // at the end of the file, after a whole entry
	stopZero                         // at zeros, where the next entry would begin
	stopCut                          // the file ends inside an entry or a transaction
	stopBadEntry                     // an entry whose checksum or header is wrong
	stopBadTxn                       // a transaction marker that does not match
	stopIncomplete                   // a transaction without its end, then zeros
)

func (s stopReason) String() string {
	return [...]string{"end of file", "end of the entries", "the file ends inside an entry",
		"an entry fails its checksum", "a transaction marker does not match", "a transaction is not finished"}[s]
}

// replay reads entries from off as Badger's replay does. It returns where
// the last whole transaction (or entry outside one) ends, where it stopped
// reading, and why.
func replay(r *windowReader, off int64) (valid, at int64, why stopReason, err error) {
	valid = off
	var txn uint64 // commit timestamp of the transaction being read, 0 outside one
	for {
		if off == r.size {
			if txn != 0 {
				return valid, off, stopCut, nil
			}
			return valid, off, stopEOF, nil
		}
		e, err := r.entryAt(off)
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			return valid, off, stopCut, nil
		case errors.Is(err, errZeroEntry) && txn != 0:
			return valid, off, stopIncomplete, nil
		case errors.Is(err, errZeroEntry):
			return valid, off, stopZero, nil
		case errors.Is(err, errBadEntry):
			return valid, off, stopBadEntry, nil
		case err != nil:
			return valid, off, 0, err
		}
		switch {
		case e.meta&bitTxn != 0:
			ts := parseTs(e.key)
			if txn == 0 {
				txn = ts
			}
			if ts != txn {
				return valid, off, stopBadTxn, nil
			}
			off += int64(e.n)
		case e.meta&bitFinTxn != 0:
			ts, err := strconv.ParseUint(string(e.value), 10, 64)
			if err != nil || ts != txn {
				return valid, off, stopBadTxn, nil
			}
			off += int64(e.n)
			txn, valid = 0, off
		default:
			if txn != 0 {
				return valid, off, stopBadTxn, nil
			}
			off += int64(e.n)
			valid = off
		}
	}
}

// findEntries looks from off on for an intact entry followed by another,
// by zeros or by the end of the file (a lone entry that passes its checks
// by chance is a one in four billion event; one followed by another is
// not a coincidence). It returns where the first begins. found with next
// -1 means it gave up, after resyncLimit bytes or resyncWork bytes of
// checksums, with data still ahead.
func findEntries(r *windowReader, off int64) (next int64, found bool, err error) {
	limit := min(r.size, off+resyncLimit)
	r.work = 0
	for p := off; p < limit; p++ {
		p, err = r.nextNonZero(p, limit)
		if err != nil || p >= limit {
			return 0, false, err
		}
		// A key is never empty: its length, the header's third byte, is
		// not zero. Try every start that puts a non-zero byte there.
		for start := max(off, p-2); start <= p; start++ {
			if r.work > resyncWork {
				return -1, true, nil
			}
			e, err := r.plausibleEntryAt(start)
			if err != nil {
				continue
			}
			_, err = r.entryAt(start + int64(e.n))
			if err == nil || errors.Is(err, errZeroEntry) || start+int64(e.n) == r.size {
				return start, true, nil
			}
		}
	}
	if limit < r.size {
		if p, err := r.nextNonZero(limit, r.size); err == nil && p < r.size {
			return -1, true, nil
		}
	}
	return 0, false, nil
}

// plausibleEntryAt is entryAt for the search for intact entries: it
// skips, before computing a checksum, what cannot be an entry of this
// store (unknown meta bits, an entry larger than maxResyncEntry).
func (r *windowReader) plausibleEntryAt(off int64) (logEntry, error) {
	h, err := r.bytesAt(off, int(min(22, r.size-off)))
	if err != nil || len(h) < 1 || h[0]&unknownMeta != 0 {
		return logEntry{}, errBadEntry
	}
	r.limit = maxResyncEntry
	defer func() { r.limit = 0 }()
	return r.entryAt(off)
}

// countEntries counts the intact entries from off on.
func countEntries(r *windowReader, off int64) int {
	n := 0
	for off < r.size {
		e, err := r.entryAt(off)
		if err != nil {
			break
		}
		n++
		off += int64(e.n)
	}
	return n
}

func parseTs(key []byte) uint64 {
	if len(key) <= 8 {
		return 0
	}
	return math.MaxUint64 - binary.BigEndian.Uint64(key[len(key)-8:])
}

var (
	errZeroEntry = errors.New("zeros where an entry would begin")
	errBadEntry  = errors.New("entry fails its checks")
)

// logEntry is one decoded entry; key and value alias the reader's window.
type logEntry struct {
	n          int // bytes it takes, checksum included
	meta       byte
	key, value []byte
}

// windowReader reads a file through a window of it held in memory.
type windowReader struct {
	f    *os.File
	size int64
	buf  []byte
	at   int64 // file offset of buf[0]

	limit int   // if not 0, entryAt refuses larger entries as bad
	work  int64 // bytes checksummed since the search began
}

const windowSize = 1 << 20

// bytesAt returns n bytes at off, io.ErrUnexpectedEOF if the file ends
// before.
func (r *windowReader) bytesAt(off int64, n int) ([]byte, error) {
	if off+int64(n) > r.size {
		return nil, io.ErrUnexpectedEOF
	}
	if off < r.at || off+int64(n) > r.at+int64(len(r.buf)) {
		size := int(min(max(int64(n), windowSize), r.size-off))
		if cap(r.buf) < size {
			r.buf = make([]byte, size)
		}
		r.buf = r.buf[:size]
		if _, err := r.f.ReadAt(r.buf, off); err != nil {
			r.buf = r.buf[:0]
			return nil, err
		}
		r.at = off
	}
	i := off - r.at
	return r.buf[i : i+int64(n)], nil
}

// entryAt decodes and checks the entry at off.
func (r *windowReader) entryAt(off int64) (logEntry, error) {
	h, err := r.bytesAt(off, int(min(22, r.size-off)))
	if err != nil {
		return logEntry{}, err
	}
	if len(h) >= 5 && h[0] == 0 && h[1] == 0 && h[2] == 0 && h[3] == 0 && h[4] == 0 {
		return logEntry{}, errZeroEntry
	}
	if len(h) < 2 {
		return logEntry{}, io.ErrUnexpectedEOF
	}
	meta := h[0]
	i := 2
	var fields [3]uint64
	for k := range fields {
		v, n := binary.Uvarint(h[i:])
		switch {
		case n == 0 && int64(len(h)) < 22:
			return logEntry{}, io.ErrUnexpectedEOF
		case n <= 0:
			return logEntry{}, errBadEntry
		}
		fields[k] = v
		i += n
	}
	klen, vlen := fields[0], fields[1]
	if klen == 0 || klen > maxKeyLen || vlen > math.MaxUint32 {
		return logEntry{}, errBadEntry
	}
	total := int64(i) + int64(klen) + int64(vlen) + crc32.Size
	if r.limit > 0 && total > int64(r.limit) {
		return logEntry{}, errBadEntry
	}
	if off+total > r.size {
		return logEntry{}, io.ErrUnexpectedEOF
	}
	r.work += total
	b, err := r.bytesAt(off, int(total))
	if err != nil {
		return logEntry{}, err
	}
	body := b[:total-crc32.Size]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[total-crc32.Size:]) {
		return logEntry{}, errBadEntry
	}
	return logEntry{n: int(total), meta: meta, key: body[i : i+int(klen)], value: body[i+int(klen):]}, nil
}

// nextNonZero returns the offset of the first non-zero byte in
// [off, limit), or limit. It skips the file's holes.
func (r *windowReader) nextNonZero(off, limit int64) (int64, error) {
	// The search moves a byte at a time: look through what the window
	// holds first. Reading a window from each offset instead made the
	// search re-read a megabyte per byte it moved (35 s past one damaged
	// 64 KiB value, hours past a damaged entry of megabytes).
	if off >= r.at && off < min(r.at+int64(len(r.buf)), limit) {
		b := r.buf[off-r.at : min(int64(len(r.buf)), limit-r.at)]
		if i := slices.IndexFunc(b, func(c byte) bool { return c != 0 }); i >= 0 {
			return off + int64(i), nil
		}
		off += int64(len(b))
	}
	for off < limit {
		start, end, ok := dataAfter(r.f, off, r.size)
		if !ok || start >= limit {
			return limit, nil
		}
		if end <= start {
			end = min(start+windowSize, r.size)
		}
		for off = start; off < min(end, limit); {
			n := int(min(windowSize, min(end, limit)-off))
			b, err := r.bytesAt(off, n)
			if err != nil {
				return 0, err
			}
			if i := slices.IndexFunc(b, func(c byte) bool { return c != 0 }); i >= 0 {
				return off + int64(i), nil
			}
			off += int64(n)
		}
	}
	return limit, nil
}
