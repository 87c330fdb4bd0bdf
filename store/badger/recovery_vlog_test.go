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

// vlogJobs is how many jobs with a value-log-sized document vlogStore
// writes in each round.
const vlogJobs = 40

// vlogDocument is job i's document: exactly store.MaxDocumentBytes of
// UTF-8, not less than the value threshold (baseOptions), so Badger keeps
// it in the value log rather than in the LSM tree.
func vlogDocument(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"n":"%03d","pad":"`, i)
	for b.Len()+3+len(`"}`) <= store.MaxDocumentBytes {
		b.WriteString("€")
	}
	for b.Len()+len(`"}`) < store.MaxDocumentBytes {
		b.WriteString("x")
	}
	b.WriteString(`"}`)
	return b.String()
}

func vlogJobID(i int) string { return fmt.Sprintf("big%03d", i) }

// createVlogJobs creates jobs from..from+vlogJobs-1, one synced commit
// each, every one acknowledged.
func createVlogJobs(t *testing.T, s *Store, from int) {
	t.Helper()
	for i := from; i < from+vlogJobs; i++ {
		if _, err := s.CreateJob(context.Background(), &store.CreateJobInput{
			Job: store.Job{JobID: vlogJobID(i), Targets: []string{storetest.ThingARN("t")}}, Document: vlogDocument(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// vlogStore builds a store whose value log 000001.vlog holds the
// documents of vlogJobs jobs, and returns its directory as state leaves
// it: "killed" is a copy taken while the store was open (the files as
// kill -9 leaves them: the value log still allocated far beyond its
// entries), "closed" the directory after Close (the value log cut to its
// last entry), and "older" a store closed, opened, given vlogJobs more
// jobs and closed again, so that 000001.vlog is a value log Badger no
// longer writes to. It returns the jobs the store holds.
func vlogStore(t *testing.T, state string) (dir string, jobs int) {
	t.Helper()
	dir = t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	createVlogJobs(t, s, 0)
	jobs = vlogJobs
	switch state {
	case "killed":
		crashed := t.TempDir()
		copySparse(t, dir, crashed)
		s.Close()
		dir = crashed
	case "closed":
		s.Close()
	case "older":
		s.Close()
		if s, err = Open(Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			t.Fatal(err)
		}
		createVlogJobs(t, s, vlogJobs)
		jobs += vlogJobs
		s.Close()
		if _, err := os.Stat(filepath.Join(dir, "000002.vlog")); err != nil {
			t.Fatalf("the second round of jobs did not go to a newer value log: %v", err)
		}
	default:
		t.Fatalf("unknown state %q", state)
	}
	return dir, jobs
}

// vlogEntries reads the value log at path and returns where its entries
// end and the size of one entry: every entry of 000001.vlog is one
// document of the same size under a key of the same length. It fails the
// test if the documents are not there.
func vlogEntries(t *testing.T, path string) (end, entry int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The entries take under 3 MB; a killed store's file is allocated
	// to 2 GiB beyond them, as a hole.
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		t.Fatal(err)
	}
	end = int64(len(bytes.TrimRight(b, "\x00")))
	if !bytes.Contains(b, []byte(`{"n":"000","pad":"€€€€`)) || (end-logHeaderSize)%vlogJobs != 0 {
		t.Fatalf("%s does not hold the %d documents (%d bytes of entries): did the value threshold change?", path, vlogJobs, end)
	}
	return end, (end - logHeaderSize) / vlogJobs
}

// readDocuments reads every job's document back and counts those that
// come back as written. A document the damage destroyed must fail to read
// (Badger, left to itself, answers an empty value, or the bytes now in the
// file), never come back different.
func readDocuments(t *testing.T, s *Store, jobs int) (intact int) {
	t.Helper()
	for i := range jobs {
		d, err := s.GetJobDocument(context.Background(), vlogJobID(i), false)
		switch {
		case err == nil && d == vlogDocument(i):
			intact++
		case err == nil:
			t.Errorf("job %s: a damaged document was served without an error (%d bytes, %.24q...)", vlogJobID(i), len(d), d)
		case !errors.Is(err, errLostValue):
			t.Errorf("job %s: %v, want an error that says the value log lost it", vlogJobID(i), err)
		}
	}
	return intact
}

// TestDamagedValueLog: a value log holding acknowledged job documents,
// damaged (4 KiB overwritten in the middle of its entries, or the file cut
// to half of them) after a kill, after a clean close, or once Badger has
// moved on to a newer value log, is reported when the store opens: the
// recovery report and an error line name the file, the offset where its
// intact entries end and how many intact entries follow,
// DamagedLogFiles (the metric's source) counts it, and StrictRecovery
// refuses to open the store and leaves the file as it is. In a value log
// Badger no longer writes, it reports the intact entries after an
// overwritten part as readable, not lost: Badger does not cut that file. After a
// lenient open, a document the damage destroyed fails to read rather than
// coming back empty or garbled.
func TestDamagedValueLog(t *testing.T) {
	const span = 4096
	for _, state := range []string{"killed", "closed", "older"} {
		for _, damage := range []string{"overwritten", "cut"} {
			t.Run(state+"/"+damage, func(t *testing.T) {
				dir, jobs := vlogStore(t, state)
				vlog := filepath.Join(dir, "000001.vlog")
				end, entry := vlogEntries(t, vlog)
				at := end / 2
				first := (at - logHeaderSize) / entry // the first entry the damage hits
				last := first                         // and the last
				problem := "the file ends inside an entry"
				switch damage {
				case "overwritten":
					f, err := os.OpenFile(vlog, os.O_WRONLY, 0)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5, 0x5A, 0x3C, 0xC3}, span/4), at); err != nil {
						t.Fatal(err)
					}
					f.Close()
					last = (at + span - 1 - logHeaderSize) / entry
					problem = "an entry fails its checksum, and intact entries follow"
				case "cut":
					if err := os.Truncate(vlog, at); err != nil {
						t.Fatal(err)
					}
					last = vlogJobs - 1
				}
				if (at-logHeaderSize)%entry == 0 {
					t.Fatalf("the damage at %d begins exactly at an entry: the test's sizes changed", at)
				}
				damagedSize := fileSize(t, vlog)
				wantEnd := logHeaderSize + first*entry
				// The intact entries after the damage are lost where Badger
				// cuts the file (the newest value log); in an older one
				// they remain readable, from the entry after the damage.
				wantFollowing, wantReadable, wantReadableFrom := int(vlogJobs-1-last), 0, int64(0)
				wantIntact := jobs - int(vlogJobs-first)
				if state == "older" && damage == "overwritten" {
					wantFollowing, wantReadable, wantReadableFrom = 0, int(vlogJobs-1-last), logHeaderSize+(last+1)*entry
					wantIntact = jobs - int(last-first+1)
				}

				// Strict: refused, naming the file, which is left as it is.
				var logs strings.Builder
				logger := slog.New(slog.NewTextHandler(&logs, nil))
				_, err := Open(Options{Dir: dir, Logger: logger, StrictRecovery: true})
				if !errors.Is(err, ErrDamagedLog) || !strings.Contains(err.Error(), "value log 000001.vlog") {
					t.Fatalf("strict open of a store with a damaged value log: %v, want ErrDamagedLog naming 000001.vlog", err)
				}
				if got := fileSize(t, vlog); got != damagedSize {
					t.Fatalf("a refused open changed the damaged value log: %d bytes, was %d", got, damagedSize)
				}
				if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "refusing to open") {
					t.Errorf("no error line says the store is refused:\n%s", logs.String())
				}
				if wantReadable > 0 && !strings.Contains(logs.String(), fmt.Sprintf("readable_from=%d entries_readable=%d", wantReadableFrom, wantReadable)) {
					t.Errorf("the error line does not say where the readable entries resume (%d) and how many (%d):\n%s", wantReadableFrom, wantReadable, logs.String())
				}

				// Not strict: opened, the damage reported.
				logs.Reset()
				s, err := Open(Options{Dir: dir, Logger: logger})
				if err != nil {
					t.Fatalf("open of a store with a damaged value log: %v", err)
				}
				defer s.Close()
				rep := s.Recovery()
				if len(rep.Damaged) != 1 || len(rep.Interrupted) != 0 {
					t.Fatalf("recovery report %+v, want %s alone damaged", rep, vlog)
				}
				d := rep.Damaged[0]
				if d.File != vlog || d.Kind != "value log" || d.Problem != problem || d.ValidEnd != wantEnd ||
					d.Size != damagedSize || d.Following != wantFollowing || d.Readable != wantReadable || d.ReadableFrom != wantReadableFrom {
					t.Fatalf("damage reported as %+v,\nwant %s, value log, %q, intact entries ending at %d of %d bytes, "+
						"%d intact entries lost after, %d readable from %d", d, vlog, problem, wantEnd, damagedSize,
						wantFollowing, wantReadable, wantReadableFrom)
				}
				if n := s.DamagedLogFiles(); n != 1 {
					t.Errorf("DamagedLogFiles = %d, want 1", n)
				}
				var line string
				for _, l := range strings.Split(logs.String(), "\n") {
					if strings.Contains(l, "level=ERROR") && strings.Contains(l, "log is damaged") {
						line = l
					}
				}
				for _, want := range []string{"file=" + vlog, `kind="value log"`, fmt.Sprintf("offset=%d", wantEnd),
					fmt.Sprintf("size=%d", damagedSize), fmt.Sprintf("entries_lost=%d", wantFollowing)} {
					if !strings.Contains(line, want+" ") {
						t.Errorf("the error line does not say %s:\n%s", want, logs.String())
					}
				}

				// The damage destroyed the documents the report says, and
				// those fail to read.
				if n := readDocuments(t, s, jobs); n != wantIntact {
					t.Errorf("%d of %d documents read back intact, want %d", n, jobs, wantIntact)
				}
				t.Log(d)
			})
		}
	}
}
