package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/{pid}/stat times
// (100 on every mainstream Linux build).
const clockTicks = 100

// sample is what a probe reads at the start and the end of a window.
type sample struct {
	at          int64   // mono()
	brokerCPU   float64 // seconds of CPU the broker used so far (0: unknown)
	benchCPU    float64 // seconds of CPU jobsbench used so far
	commits     float64 // the broker's store commits so far
	commitOps   float64 // operations in those commits
	commitSecs  float64 // time spent committing
	haveMetrics bool
}

// prober reads CPU times and the store metrics of the broker's nodes,
// summed.
type prober struct {
	pids       []int    // processes whose CPU time counts as the broker's
	metricsURL []string // jobsbroker's /metrics, one per node
	http       *http.Client
}

// newProber samples the processes pids (0 entries are unknown) and the
// metrics of the control-plane APIs at apiURLs.
func newProber(pids []int, apiURLs []string) *prober {
	p := &prober{http: &http.Client{Timeout: 5 * time.Second}}
	for _, pid := range pids {
		if pid != 0 {
			p.pids = append(p.pids, pid)
		}
	}
	for _, u := range apiURLs {
		if u != "" {
			p.metricsURL = append(p.metricsURL, u+"/metrics")
		}
	}
	return p
}

func (p *prober) sample(ctx context.Context) sample {
	s := sample{at: mono()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.benchCPU = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
	}
	for _, pid := range p.pids {
		if cpu, err := processCPU(pid); err == nil {
			s.brokerCPU += cpu
		}
	}
	s.haveMetrics = len(p.metricsURL) > 0
	for _, u := range p.metricsURL {
		m, err := p.scrape(ctx, u)
		if err != nil {
			s.haveMetrics = false
			continue
		}
		s.commits += m["jobsbroker_store_commit_operations_count"]
		s.commitOps += m["jobsbroker_store_commit_operations_sum"]
		s.commitSecs += m["jobsbroker_store_commit_duration_seconds_sum"]
	}
	return s
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// processCPU returns the user plus system CPU seconds of a process.
func processCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	// The command name (field 2) may hold spaces; fields count from its ")".
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("read CPU time: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("read CPU time: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64) // field 14
	stime, err2 := strconv.ParseFloat(f[12], 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read CPU time: malformed /proc/%d/stat", pid)
	}
	return (utime + stime) / clockTicks, nil
}

// scrape reads the unlabeled samples of the broker's /metrics.
func (p *prober) scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %d", url, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// WindowUsage is what the broker and jobsbench did during a measured
// window, from CPU times and the broker's metrics.
type WindowUsage struct {
	// BrokerCores and BenchCores are CPU seconds per second of the
	// broker and of jobsbench (both share the machine).
	BrokerCores float64 `json:"broker_cores,omitempty"`
	BenchCores  float64 `json:"bench_cores"`
	// CommitsPerSec, OpsPerCommit and CommitMs describe the store's group
	// commits (jobsbroker only).
	CommitsPerSec float64 `json:"commits_per_s,omitempty"`
	OpsPerCommit  float64 `json:"ops_per_commit,omitempty"`
	CommitMs      float64 `json:"mean_commit_ms,omitempty"`
}

// windowUsage compares two samples.
func windowUsage(a, b sample) *WindowUsage {
	secs := float64(b.at-a.at) / 1e9
	if secs <= 0 {
		return nil
	}
	u := &WindowUsage{BenchCores: round3((b.benchCPU - a.benchCPU) / secs)}
	if a.brokerCPU > 0 {
		u.BrokerCores = round3((b.brokerCPU - a.brokerCPU) / secs)
	}
	if a.haveMetrics && b.haveMetrics {
		if n := b.commits - a.commits; n > 0 {
			u.CommitsPerSec = round3(n / secs)
			u.OpsPerCommit = round3((b.commitOps - a.commitOps) / n)
			u.CommitMs = round3((b.commitSecs - a.commitSecs) / n * 1000)
		}
	}
	return u
}
