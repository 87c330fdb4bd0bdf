//go:build !linux

package main

import (
	"fmt"
	"os"
)

// fdatasync flushes f with fsync where fdatasync is not available.
func fdatasync(f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	return nil
}
