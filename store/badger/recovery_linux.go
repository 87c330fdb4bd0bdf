package badger

import (
	"errors"
	"os"
	"syscall"
)

// lseek(2) whence values of Linux that find the data of a sparse file.
const (
	seekData = 3
	seekHole = 4
)

// dataAfter returns the start and end of the first region of f holding
// data at or after off, so that a search through a sparse log (Badger
// allocates a memtable's log and the newest value log far larger than
// their contents) skips its holes. ok is false when only a hole follows.
// Where the filesystem cannot tell, everything from off on is data.
func dataAfter(f *os.File, off, size int64) (start, end int64, ok bool) {
	start, err := f.Seek(off, seekData)
	if errors.Is(err, syscall.ENXIO) {
		return 0, 0, false
	}
	if err != nil {
		return off, size, true
	}
	end, err = f.Seek(start, seekHole)
	if err != nil {
		end = size
	}
	return start, end, true
}
