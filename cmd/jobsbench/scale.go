package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// ScaleRun is one half of the scale scenario: a broker holding some
// executions besides steady's own, restarted, then measured with steady.
type ScaleRun struct {
	// Stored is how many executions were created before the restart.
	Stored int64 `json:"stored"`
	// FillS is how long creating and rolling them out took.
	FillS float64 `json:"fill_s"`
	// DataMiB is the disk space of the data directory before the restart.
	DataMiB float64 `json:"data_mib"`
	// StartS is how long the restarted broker took from exec to its
	// "jobsbroker started" line (listeners serving, store open); /readyz
	// was checked right after.
	StartS float64 `json:"start_s"`
	// RSSAfterStartMiB is the broker's RSS just after the restart.
	RSSAfterStartMiB float64     `json:"rss_after_start_mib"`
	Steady           *LoopResult `json:"steady"`
}

// ScaleResult is the outcome of the scale scenario: steady over a broker
// holding few executions, then over one holding many.
type ScaleResult struct {
	Baseline *ScaleRun `json:"baseline"`
	Loaded   *ScaleRun `json:"loaded"`
	// Ratio is the loaded steady ops/s ÷ the baseline steady ops/s.
	Ratio float64 `json:"ratio"`
}

// scaleBaselineStored is how many executions the baseline broker holds.
const scaleBaselineStored = 1000

// runScale measures what a large store costs: for scaleBaselineStored and
// then for -stored executions, it starts a fresh broker, creates that many
// executions (jobs for a thing group of up to -things things), restarts
// the broker on the same data directory (timing its start) and runs
// steady. Steady's own jobs come on top in both runs.
func runScale(ctx context.Context, cfg *config, rep *Report) error {
	if cfg.MQTTAddr != "" {
		return errors.New("scale starts and restarts its own brokers: it cannot use -mqtt")
	}
	if cfg.StoreURL != "" {
		return errors.New("scale measures the embedded Badger store: it cannot use -store-url")
	}
	if cfg.Stored <= scaleBaselineStored {
		return fmt.Errorf("scale: -stored %d must be more than the baseline's %d", cfg.Stored, scaleBaselineStored)
	}
	bin := cfg.BrokerBin
	if bin == "" {
		var err error
		if bin, err = buildBroker(ctx); err != nil {
			return err
		}
	}
	res := &ScaleResult{}
	rep.Scale = res
	var err error
	if res.Baseline, err = scaleRun(ctx, cfg, rep, bin, scaleBaselineStored); err != nil {
		return err
	}
	if res.Loaded, err = scaleRun(ctx, cfg, rep, bin, int64(cfg.Stored)); err != nil {
		return err
	}
	if b := res.Baseline.Steady.OpsPerSec; b > 0 {
		res.Ratio = round3(res.Loaded.Steady.OpsPerSec / b)
	}
	return nil
}

// scaleRun is one half of the scale scenario.
func scaleRun(ctx context.Context, cfg *config, rep *Report, bin string, stored int64) (*ScaleRun, error) {
	label := fmt.Sprintf("scale %d", stored)
	t, err := startBroker(ctx, bin, cfg.NoSync)
	if err != nil {
		return nil, err
	}
	defer func() { closeTarget(t, rep) }()
	run := &ScaleRun{Stored: stored}
	fillStart := time.Now()
	lastJob, perJob, err := fillStore(ctx, cfg, t, label, stored)
	if err != nil {
		return nil, err
	}
	run.FillS = seconds(int64(time.Since(fillStart)))
	run.DataMiB = mib(dirSize(t.proc.dataDir))

	rep.BrokerWarnings = append(rep.BrokerWarnings, t.Warnings()...)
	nt, err := t.restart(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	t = nt
	run.StartS = seconds(int64(t.proc.startedIn))
	run.RSSAfterStartMiB = mib(t.RSS())
	if err := checkReady(ctx, t.APIURL); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	// The restarted broker still has what was stored.
	j, err := newAPIClient(t.APIURL, 1).describeJob(ctx, lastJob)
	if err != nil {
		return nil, fmt.Errorf("%s: after the restart: %w", label, err)
	}
	if j.executions() != perJob {
		return nil, fmt.Errorf("%s: after the restart job %s has %d executions, not %d", label, lastJob, j.executions(), perJob)
	}
	if run.Steady, err = steadyJobs(ctx, cfg, t, rep); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	run.Steady.Name = label
	return run, nil
}

// fillStore creates stored QUEUED executions: ceil(stored / -things) jobs,
// each for one set of up to -things things, and waits until they are
// rolled out. It returns the last job's id and its number of executions.
func fillStore(ctx context.Context, cfg *config, t *target, label string, stored int64) (string, int64, error) {
	api := newAPIClient(t.APIURL, cfg.APIConcurrency)
	run := runID()
	perJob := min(int64(max(1, cfg.Things)), stored)
	jobs := (stored + perJob - 1) / perJob
	things := names("scale-"+run, int(perJob))
	var registered, rolled atomic.Int64
	var created atomic.Int64
	prog := startProgress(cfg.Progress, label+" fill", func(time.Duration) string {
		return fmt.Sprintf("things %d/%d  jobs %d/%d  executions %d/%d", registered.Load(), perJob,
			created.Load(), jobs, rolled.Load(), jobs*perJob)
	})
	defer prog.Stop()
	targets, err := api.targetsFor(ctx, things, "scale-"+run, cfg.APIConcurrency, &registered)
	if err != nil {
		return "", 0, fmt.Errorf("%s fill: %w", label, err)
	}
	var id string
	for j := range jobs {
		id = fmt.Sprintf("scale-%s-%04d", run, j)
		if err := api.createJob(ctx, id, targets, benchDocument); err != nil {
			return "", 0, fmt.Errorf("%s fill: %w", label, err)
		}
		created.Add(1)
		done := j * perJob
		if err := api.waitRolledOut(ctx, id, perJob, 100*time.Millisecond, func(n int64) { rolled.Store(done + n) }); err != nil {
			return "", 0, fmt.Errorf("%s fill: %w", label, err)
		}
	}
	return id, perJob, nil
}

// checkReady fails unless the broker's /readyz answers 200.
func checkReady(ctx context.Context, apiURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz answered %d after the start line", resp.StatusCode)
	}
	return nil
}

// dirSize is the disk space the regular files under dir take (0 on
// error): allocated blocks, not lengths, as Badger preallocates its value
// log as a sparse file.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
