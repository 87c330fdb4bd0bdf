// Package logsample keeps a log line that a client can cause at will (a
// refused signature, a refused login) from flooding the log: the first few
// are written, then at most one per interval, each saying how many were
// left out since the last.
package logsample

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of New: ten lines at once, then one every ten seconds.
const (
	DefaultBurst    = 10
	DefaultInterval = 10 * time.Second
)

// Sampler writes one kind of log line at a bounded rate. The zero value is
// not usable; make one with New. It is safe for concurrent use.
type Sampler struct {
	every   rate.Sometimes
	skipped atomic.Int64
}

// New returns a Sampler that writes the first DefaultBurst lines, then at
// most one per DefaultInterval.
func New() *Sampler {
	return &Sampler{every: rate.Sometimes{First: DefaultBurst, Interval: DefaultInterval}}
}

// Log writes msg at level to log with args, unless the rate is spent; a
// line written after some were left out carries their number as
// "suppressed".
func (s *Sampler) Log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	if !log.Enabled(context.Background(), level) {
		return
	}
	written := false
	s.every.Do(func() {
		written = true
		if n := s.skipped.Swap(0); n > 0 {
			args = append(args, "suppressed", n)
		}
		log.Log(context.Background(), level, msg, args...)
	})
	if !written {
		s.skipped.Add(1)
	}
}
