package badger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
)

// Badger writes its logs and tables through memory maps of files it
// creates sparse (a memtable's log is 32 MB of hole to start with). A
// page of such a map gets its disk block when it is first written, and
// when the filesystem has no block left the kernel kills the process with
// SIGBUS: no error reaches Badger, let alone the store. That is what
// crashed a broker run with the free-space guard off on a full disk
// (inside logFile.writeEntry, writing a commit to the memtable's log).
// So the store never lets Badger write with less free space than Badger
// may need before the committer looks again: what one commit writes to
// the write-ahead log and to the value log, and the table a full memtable
// is flushed to. That floor holds even when MinFreeBytes is negative;
// MinFreeBytes adds a margin above it (compactions of a large store,
// other users of the disk).

// diskSpace watches the free space of the store's filesystem for the
// committer. It looks before every batch: statfs costs about a
// microsecond, and a disk can fill up between two batches.
type diskSpace struct {
	isLow  bool
	warned bool
	floor  int64        // the least free space Badger may write with; set on first use
	low    atomic.Bool  // isLow, for readers outside the committer
	need   atomic.Int64 // the free space last required
}

// minFree is the free space below which writes are refused: MinFreeBytes
// (none when negative), but never less than Badger's floor.
func (d *diskSpace) minFree(s *Store) int64 {
	if d.floor == 0 {
		d.floor = 2*s.maxBytes + 2*s.db.Opts().MemTableSize
	}
	return max(s.opts.MinFreeBytes, d.floor)
}

// check reports whether the filesystem holding the store has less than
// minFree free. Committer only.
func (d *diskSpace) check(s *Store) bool {
	if s.opts.InMemory {
		return false
	}
	free, err := freeBytes(s.opts.Dir)
	if err != nil {
		s.log.Warn("cannot read the free space of the store's filesystem", "error", err)
		return d.isLow
	}
	need := d.minFree(s)
	d.need.Store(need)
	d.isLow = free < uint64(need)
	d.low.Store(d.isLow)
	switch {
	case d.isLow && !d.warned:
		s.log.Error("the store's disk is nearly full: writes are refused until space is freed",
			"free_bytes", free, "min_free_bytes", need)
		d.warned = true
	case !d.isLow && d.warned:
		s.log.Info("the store's disk has room again: writes resume", "free_bytes", free)
		d.warned = false
	}
	return d.isLow
}

// refusal is the error of a write refused for lack of space.
func (d *diskSpace) refusal() error {
	return fmt.Errorf("the disk holding the store has less than %d MiB free; writes resume when there is more", d.need.Load()>>20)
}

// WritesRefused reports, while the store refuses writes for lack of disk
// space, why; nil while it takes them. /readyz turns unready meanwhile:
// ready means the store answers writes.
func (s *Store) WritesRefused() error {
	if s.space.low.Load() {
		return s.space.refusal()
	}
	return nil
}

// roomForGC reports whether value-log garbage collection may run: it
// rewrites a value-log file through a memory map, which may take as much
// again as one file holds (or the whole value log, if smaller), on top of
// what writes need (as the committer last worked it out).
func (s *Store) roomForGC() bool {
	if s.opts.InMemory {
		return true
	}
	free, err := freeBytes(s.opts.Dir)
	if err != nil {
		return false
	}
	need := s.space.need.Load()
	if need == 0 {
		need = max(s.opts.MinFreeBytes, 0)
	}
	_, vlog := s.db.Size()
	return free >= uint64(need+min(vlog, s.db.Opts().ValueLogFileSize))
}

// freeBytes returns the space an unprivileged process may still use on the
// filesystem holding dir.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// removeEmptyMemtables deletes zero-length memtable files. Badger leaves
// one behind when it failed to create a memtable (a full disk, a file size
// limit), and then refuses to open the directory; an empty file holds no
// data, so removing it loses nothing.
func removeEmptyMemtables(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read store directory: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() != 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("remove the empty memtable file %s: %w", e.Name(), err)
		}
	}
	return nil
}
