package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// FsyncResult is the disk's flush latency: what one durable commit waits
// for at least, measured without the broker.
type FsyncResult struct {
	// Dir is where the file was written (where jobsbench puts the data
	// directories of the brokers it starts).
	Dir string `json:"dir"`
	// BlockBytes is the size of each append.
	BlockBytes int `json:"block_bytes"`
	// SyncsPerSec is sequential appends+fdatasync per second.
	SyncsPerSec float64 `json:"syncs_per_s"`
	// Latency is the latency of one fdatasync after an append.
	Latency Latency `json:"latency"`
}

// fsyncBlock is the size of each append, about one group commit of a few
// device operations.
const fsyncBlock = 4096

// runFsync appends fsyncBlock bytes to a file and flushes it with
// fdatasync, one after another, for -duration.
func runFsync(ctx context.Context, cfg *config, rep *Report) error {
	f, err := os.CreateTemp("", "jobsbench-fsync-")
	if err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, fsyncBlock)
	for i := range block {
		block[i] = byte(i)
	}
	var samples []int64
	prog := startProgress(cfg.Progress, "fsync", func(time.Duration) string {
		return fmt.Sprintf("%d flushes", len(samples))
	})
	start := mono()
	end := start + int64(cfg.Duration)
	for now := start; now < end && ctx.Err() == nil; now = mono() {
		if _, err := f.Write(block); err != nil {
			prog.Stop()
			return fmt.Errorf("fsync: append: %w", err)
		}
		t := mono()
		if err := fdatasync(f); err != nil {
			prog.Stop()
			return fmt.Errorf("fsync: %w", err)
		}
		samples = append(samples, mono()-t)
		// Start over now and then so the file stays small and its
		// extent map simple, as Badger's preallocated logs are.
		if len(samples)%4096 == 0 {
			if err := f.Truncate(0); err != nil {
				prog.Stop()
				return fmt.Errorf("fsync: %w", err)
			}
			if _, err := f.Seek(0, 0); err != nil {
				prog.Stop()
				return fmt.Errorf("fsync: %w", err)
			}
		}
	}
	prog.Stop()
	elapsed := mono() - start
	rep.Fsync = &FsyncResult{
		Dir:         os.TempDir(),
		BlockBytes:  fsyncBlock,
		SyncsPerSec: round1(float64(len(samples)) / (float64(elapsed) / 1e9)),
		Latency:     summarize(samples),
	}
	return nil
}
