package postgres

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestFailuresBackOff: a background loop that fails again and again waits
// longer each time, up to 5 s, and logs the first failure and then one at
// each doubling of the count, not every one.
func TestFailuresBackOff(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var f failures
	var waits []time.Duration
	for range 20 {
		waits = append(waits, f.fail(log, slog.LevelError, "fire timers", "timer sweep", errors.New("connection refused")))
	}
	if waits[0] != retrySoon || waits[1] != 2*retrySoon || waits[19] != 5*time.Second {
		t.Errorf("waits %v", waits)
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] < waits[i-1] {
			t.Errorf("wait %d (%v) is shorter than the one before (%v)", i, waits[i], waits[i-1])
		}
	}
	if n := strings.Count(buf.String(), "fire timers"); n != 5 { // failures 1, 2, 4, 8, 16
		t.Errorf("%d log lines for 20 failures:\n%s", n, buf.String())
	}
	f.ok()
	if w := f.fail(log, slog.LevelError, "fire timers", "timer sweep", errors.New("again")); w != retrySoon {
		t.Errorf("after a success the wait is %v, want %v", w, retrySoon)
	}
}
