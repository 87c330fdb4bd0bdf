package badger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// diskSpace watches the free space of the store's filesystem for the
// committer. It looks before every batch: statfs costs about a
// microsecond, and a disk can fill up between two batches.
type diskSpace struct {
	isLow  bool
	warned bool
}

// low reports whether the filesystem holding the store has less than
// MinFreeBytes free. Committer only.
func (d *diskSpace) low(s *Store) bool {
	if s.opts.MinFreeBytes < 0 || s.opts.InMemory {
		return false
	}
	free, err := freeBytes(s.opts.Dir)
	if err != nil {
		s.log.Warn("cannot read the free space of the store's filesystem", "error", err)
		return d.isLow
	}
	d.isLow = free < uint64(s.opts.MinFreeBytes)
	switch {
	case d.isLow && !d.warned:
		s.log.Error("the store's disk is nearly full: writes are refused until space is freed",
			"free_bytes", free, "min_free_bytes", s.opts.MinFreeBytes)
		d.warned = true
	case !d.isLow && d.warned:
		s.log.Info("the store's disk has room again: writes resume", "free_bytes", free)
		d.warned = false
	}
	return d.isLow
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
