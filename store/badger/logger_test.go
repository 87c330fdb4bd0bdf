package badger

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestBadgerLoggerFormatsOnlyWhatIsLogged checks that Badger's debug lines,
// several for every commit, cost no allocation while debug logging is off,
// and that its warnings still arrive formatted.
func TestBadgerLoggerFormatsOnlyWhatIsLogged(t *testing.T) {
	var buf bytes.Buffer
	l := badgerLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	table := "000042.sst"
	if n := testing.AllocsPerRun(100, func() { l.Debugf("writing %s", table) }); n != 0 {
		t.Errorf("a debug line with debug off made %v allocations, want 0", n)
	}
	l.Infof("compacting %s", table)
	if buf.Len() != 0 {
		t.Errorf("Badger's info line was logged at info: %q", buf.String())
	}
	l.Warningf("table %s is %d bytes", table, 7)
	if got := buf.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, `message="table 000042.sst is 7 bytes"`) {
		t.Errorf("warning logged as %q", got)
	}
}
