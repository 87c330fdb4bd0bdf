package broker

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestMemoryLimitInStartLog(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	for _, c := range []struct {
		limit int64
		want  string
	}{{512 << 20, "512 MiB"}, {math.MaxInt64, "none"}} {
		debug.SetMemoryLimit(c.limit)
		if got := memoryLimit(); got != c.want {
			t.Errorf("limit %d: memory_limit %q, want %q", c.limit, got, c.want)
		}
	}
}
