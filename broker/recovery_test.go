package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/smithy-go"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestDamagedLogAfterKill: the broker binary is killed (SIGKILL) with
// acknowledged changes in its memtable's write-ahead log, and 4 KiB in
// the middle of that log are overwritten. With -strict-recovery the broker
// refuses to start, naming the file; without it, it starts, logs an error
// naming the file and what was dropped, and jobsbroker_store_damaged_log_files
// says 1. Before, it started, reported ready and said nothing, at any log
// level.
func TestDamagedLogAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	dir := t.TempDir()
	p := brokertest.StartProcess(t, dir)
	const things = 100
	targets := make([]string, things)
	for i := range targets {
		targets[i] = brokertest.ThingARN(fmt.Sprintf("t%03d", i))
	}
	ctx := context.Background()
	if _, err := brokertest.IoTClient(p.APIURL()).CreateJob(ctx, &iot.CreateJobInput{
		JobId: aws.String("fw"), Targets: targets, Document: aws.String(`{"op":"fw"}`)}); err != nil {
		t.Fatal(err)
	}
	for i := range things {
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/things/t%03d/jobs/$next", p.JobsAddr, i), strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("start-next t%03d: %d", i, resp.StatusCode)
		}
	}
	p.Kill()

	// Overwrite 4 KiB in the middle of the entries of the fullest log.
	mems, _ := filepath.Glob(filepath.Join(dir, "jobs", "*.mem"))
	var wal string
	var end int
	for _, m := range mems {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(bytes.TrimRight(b, "\x00")); n > end {
			wal, end = m, n
		}
	}
	if end < 16<<10 {
		t.Fatalf("no memtable log holds the acknowledged changes (%v)", mems)
	}
	f, err := os.OpenFile(wal, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte("damaged!"), 512), int64(end/2)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	checkDamageReported(t, dir, filepath.Base(wal))
}

// checkDamageReported runs the broker on dir, whose store has one damaged
// log, name: with -strict-recovery it must refuse to start, naming the
// file; without, it must start, log an error naming the file and what was
// dropped, and say 1 in jobsbroker_store_damaged_log_files. It returns the
// broker, running.
func checkDamageReported(t *testing.T, dir, name string) *brokertest.Process {
	t.Helper()
	out, code := brokertest.RunProcess(t, 30*time.Second, dir, "-strict-recovery")
	if code == 0 || code == -1 || !strings.Contains(out, name) || !strings.Contains(out, "damaged") {
		t.Fatalf("-strict-recovery on a damaged log: exit %d (-1: still running after 30s), output:\n%s", code, out)
	}

	p := brokertest.StartProcess(t, dir)
	var line string
	for _, l := range strings.Split(p.Logs(), "\n") {
		if strings.Contains(l, `"level":"ERROR"`) && strings.Contains(l, name) && strings.Contains(l, "entries_lost") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no error line names the damaged log %s:\n%s", name, p.Logs())
	}
	t.Log(line)
	resp, err := http.Get(p.APIURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(metrics), "\njobsbroker_store_damaged_log_files 1\n") {
		t.Fatalf("jobsbroker_store_damaged_log_files is not 1:\n%s", grepLines(string(metrics), "damaged"))
	}
	return p
}

// TestDamagedValueLogAfterKill: the broker binary is killed (SIGKILL)
// after acknowledging jobs whose 64 KiB documents Badger keeps in its value
// log, and 4 KiB in the middle of that log's entries are overwritten. The
// broker reports it as it does a damaged write-ahead log: -strict-recovery
// refuses to start, naming 000001.vlog; without it, an error line names
// the file and what was dropped, and jobsbroker_store_damaged_log_files
// says 1. A document the damage destroyed is answered 503, not served
// empty.
func TestDamagedValueLogAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	dir := t.TempDir()
	p := brokertest.StartProcess(t, dir)
	// 65,536 bytes of UTF-8 in 16,390 characters: the largest document
	// the broker takes, and not less than the store's value threshold.
	doc := `{"p":"` + strings.Repeat("\U0001D11E", 16382) + `"}`
	api := brokertest.IoTClient(p.APIURL())
	const jobs = 40
	for i := range jobs {
		if _, err := api.CreateJob(context.Background(), &iot.CreateJobInput{JobId: aws.String(fmt.Sprintf("big%02d", i)),
			Targets: []string{brokertest.ThingARN("t")}, Document: aws.String(doc)}); err != nil {
			t.Fatal(err)
		}
	}
	p.Kill()

	vlog := filepath.Join(dir, "jobs", "000001.vlog")
	f, err := os.OpenFile(vlog, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The entries take under 3 MB of a file allocated to gigabytes.
	head, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		t.Fatal(err)
	}
	end := len(bytes.TrimRight(head, "\x00"))
	if end < jobs*len(doc) || !bytes.Contains(head, []byte(doc)) {
		t.Fatalf("%s does not hold the %d documents (%d bytes of entries)", vlog, jobs, end)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte("damaged!"), 512), int64(end/2)); err != nil {
		t.Fatal(err)
	}
	p = checkDamageReported(t, dir, filepath.Base(vlog))
	api = brokertest.IoTClient(p.APIURL())
	if out, err := api.GetJobDocument(context.Background(), &iot.GetJobDocumentInput{JobId: aws.String("big00")}); err != nil || aws.ToString(out.Document) != doc {
		t.Errorf("the document before the damage: %v, want it intact", err)
	}
	_, err = api.GetJobDocument(context.Background(), &iot.GetJobDocumentInput{JobId: aws.String(fmt.Sprintf("big%02d", jobs-1))})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ServiceUnavailableException" {
		t.Errorf("a document the damage destroyed: %v, want ServiceUnavailableException", err)
	}
}
