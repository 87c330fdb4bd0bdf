package logsample

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSampler: a burst is written whole up to DefaultBurst lines, the rest
// left out, and the next line written says how many were.
func TestSampler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	s := New()
	for range DefaultBurst + 5 {
		s.Log(log, slog.LevelInfo, "refused")
	}
	if n := strings.Count(buf.String(), "refused"); n != DefaultBurst {
		t.Fatalf("%d lines written of a burst of %d, want %d", n, DefaultBurst+5, DefaultBurst)
	}
	if got := s.skipped.Load(); got != 5 {
		t.Fatalf("%d counted as left out, want 5", got)
	}
	// The interval has passed: the next line is written with the count.
	s.every.Interval = time.Nanosecond
	buf.Reset()
	s.Log(log, slog.LevelInfo, "refused")
	if !strings.Contains(buf.String(), "suppressed=5") {
		t.Fatalf("line after the burst: %q, want suppressed=5", buf.String())
	}
}

// TestSamplerDisabledLevel: a level the logger does not write counts
// nothing as left out.
func TestSamplerDisabledLevel(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := New()
	for range 20 {
		s.Log(log, slog.LevelInfo, "refused")
	}
	if buf.Len() != 0 || s.skipped.Load() != 0 {
		t.Fatalf("wrote %q and counted %d", buf.String(), s.skipped.Load())
	}
}
