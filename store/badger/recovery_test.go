package badger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

const crashThings = 200

// crashedStore builds a store in which crashThings things each started a
// job, one synced commit each, and returns a copy of its directory taken
// while it was open: the files as a crash (kill -9) leaves them, the
// commits in a memtable's write-ahead log. It also returns that log's
// path and where its entries end.
func crashedStore(t *testing.T) (dir, wal string, dataEnd int64) {
	t.Helper()
	live := t.TempDir()
	s, err := Open(Options{Dir: live, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	targets := make([]string, crashThings)
	for i := range targets {
		targets[i] = storetest.ThingARN(fmt.Sprintf("t%03d", i))
	}
	if _, err := s.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: "j", Targets: targets}, Document: `{}`}); err != nil {
		t.Fatal(err)
	}
	for i := range crashThings {
		if _, err := s.StartNextPendingJobExecution(ctx, &store.StartNextInput{ThingName: fmt.Sprintf("t%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	dir = t.TempDir()
	copySparse(t, live, dir)
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	for _, m := range mems {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if end := int64(len(bytes.TrimRight(b, "\x00"))); end > dataEnd {
			wal, dataEnd = m, end
		}
	}
	if wal == "" || dataEnd < 64<<10 {
		t.Fatalf("no memtable log holds the commits (%v, %d bytes)", mems, dataEnd)
	}
	return dir, wal, dataEnd
}

// copySparse copies the files of a store directory, skipping the holes of
// its sparse logs (the newest value log is gigabytes of them).
func copySparse(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "LOCK" {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := src.Stat()
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < st.Size(); {
			start, end, ok := dataAfter(src, off, st.Size())
			if !ok {
				break
			}
			if end <= start {
				end = st.Size()
			}
			if _, err := io.Copy(io.NewOffsetWriter(dst, start), io.NewSectionReader(src, start, end-start)); err != nil {
				t.Fatal(err)
			}
			off = end
		}
		if err := dst.Truncate(st.Size()); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
}

// startedThings counts the things whose execution is IN_PROGRESS.
func startedThings(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	for i := range crashThings {
		out, err := s.DescribeJobExecution(context.Background(), &store.DescribeExecutionInput{ThingName: fmt.Sprintf("t%03d", i), JobID: "j"})
		if err == nil && out.Execution.Status == store.StatusInProgress {
			n++
		}
	}
	return n
}

// TestDamagedWriteAheadLog: a memtable's write-ahead log damaged after a
// crash (4 KiB overwritten in the middle, cut in the middle of its
// entries, emptied) is reported when the store opens: Recovery names the
// file and what is dropped, an error line says so, and StrictRecovery
// refuses to open the store, leaving the file as it is. Before, Badger
// dropped everything after the damage without a word.
func TestDamagedWriteAheadLog(t *testing.T) {
	cases := []struct {
		name     string
		damage   func(t *testing.T, wal string, end int64)
		problem  string
		followed bool // intact entries follow the damage
	}{
		{"overwritten", func(t *testing.T, wal string, end int64) {
			f, err := os.OpenFile(wal, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			junk := bytes.Repeat([]byte{0xA5, 0x5A, 0x3C, 0xC3}, 1024)
			if _, err := f.WriteAt(junk, end/2); err != nil {
				t.Fatal(err)
			}
		}, "fails its checksum", true},
		{"zeroed", func(t *testing.T, wal string, end int64) {
			f, err := os.OpenFile(wal, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 4096), end/2); err != nil {
				t.Fatal(err)
			}
		}, "", true},
		{"cut", func(t *testing.T, wal string, end int64) {
			if err := os.Truncate(wal, end/2+7); err != nil {
				t.Fatal(err)
			}
		}, "", false},
		{"emptied", func(t *testing.T, wal string, end int64) {
			if err := os.Truncate(wal, 0); err != nil {
				t.Fatal(err)
			}
		}, "empty", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, wal, end := crashedStore(t)
			tc.damage(t, wal, end)
			damagedSize := fileSize(t, wal)

			// Strict: refused, the file untouched.
			var logs strings.Builder
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			_, err := Open(Options{Dir: dir, Logger: logger, StrictRecovery: true})
			if !errors.Is(err, ErrDamagedLog) || !strings.Contains(err.Error(), filepath.Base(wal)) {
				t.Fatalf("strict open of a store with a damaged log: %v, want ErrDamagedLog naming %s", err, filepath.Base(wal))
			}
			if got := fileSize(t, wal); got != damagedSize {
				t.Fatalf("a refused open changed the damaged file: %d bytes, was %d", got, damagedSize)
			}

			// Not strict: opened, the damage reported.
			logs.Reset()
			s, err := Open(Options{Dir: dir, Logger: logger})
			if err != nil {
				t.Fatalf("open of a store with a damaged log: %v", err)
			}
			defer s.Close()
			rep := s.Recovery()
			if len(rep.Damaged) != 1 || rep.Damaged[0].File != wal || !strings.Contains(rep.Damaged[0].Problem, tc.problem) {
				t.Fatalf("recovery report %+v, want %s damaged (%q)", rep, wal, tc.problem)
			}
			if d := rep.Damaged[0]; tc.followed != (d.Following > 0) {
				t.Errorf("%d intact entries reported after the damage, want some: %v", d.Following, tc.followed)
			}
			line := logs.String()
			if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "log is damaged") || !strings.Contains(line, filepath.Base(wal)) {
				t.Errorf("no error line names the damaged file:\n%s", line)
			}
			if n := startedThings(t, s); n >= crashThings {
				t.Errorf("all %d executions survived: the damage destroyed nothing, the test proves nothing", n)
			} else {
				t.Logf("%d of %d acknowledged starts survived; %s", n, crashThings, rep.Damaged[0])
			}
		})
	}
}

// TestCrashedLogsAreNotDamage: the logs as a crash leaves them, including
// a commit that was being written when the process died (its last entry
// cut short, never acknowledged), open without a damage report, strict
// recovery included.
func TestCrashedLogsAreNotDamage(t *testing.T) {
	dir, wal, end := crashedStore(t)
	t.Run("clean", func(t *testing.T) {
		s, err := Open(Options{Dir: copyOf(t, dir), Logger: slog.New(slog.DiscardHandler), StrictRecovery: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if rep := s.Recovery(); len(rep.Damaged)+len(rep.Interrupted) != 0 {
			t.Fatalf("a crash's logs reported as %+v", rep)
		}
		if n := startedThings(t, s); n != crashThings {
			t.Fatalf("%d of %d acknowledged starts survived the crash", n, crashThings)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		d := copyOf(t, dir)
		w := filepath.Join(d, filepath.Base(wal))
		// The last commit, cut short inside its last entry: the bytes
		// from there on were never written.
		f, err := os.OpenFile(w, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(make([]byte, 10), end-10); err != nil {
			t.Fatal(err)
		}
		f.Close()
		s, err := Open(Options{Dir: d, Logger: slog.New(slog.DiscardHandler), StrictRecovery: true})
		if err != nil {
			t.Fatalf("an interrupted last write refused under strict recovery: %v", err)
		}
		defer s.Close()
		if rep := s.Recovery(); len(rep.Damaged) != 0 || len(rep.Interrupted) != 1 {
			t.Fatalf("an interrupted last write reported as %+v, want one interrupted write", rep)
		}
		if n := startedThings(t, s); n != crashThings-1 {
			t.Fatalf("%d starts survived, want all but the interrupted one (%d)", n, crashThings-1)
		}
	})
}

func copyOf(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	copySparse(t, dir, to)
	return to
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
