//go:build linux

package broker_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestListenerSurvivesDescriptorExhaustion runs the broker binary with a
// small file-descriptor limit (prlimit) and fills it with bare TCP
// connections. accept then fails with "too many open files": the listener
// keeps retrying (it used to return, and no client could connect until a
// restart), /readyz answers 503 naming the listener meanwhile, and once
// descriptors are free again the listener accepts, a client connects and
// /readyz is 200.
func TestListenerSurvivesDescriptorExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	p := brokertest.StartProcess(t, t.TempDir(), "-connect-timeout", "2m", "-max-connections", "-1")
	// /readyz over one kept-alive connection: it needs no new descriptor.
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	ready := func() (int, string) {
		resp, err := httpc.Get(p.APIURL() + "/readyz")
		if err != nil {
			t.Fatalf("/readyz: %v\n%s", err, p.Logs())
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("/readyz before: %d %s", code, body)
	}
	open, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Pid()))
	if err != nil {
		t.Skipf("cannot count the broker's descriptors: %v", err)
	}
	limit := uint64(len(open) + 16)
	if err := setNoFile(p.Pid(), limit); err != nil {
		t.Skipf("cannot lower the broker's RLIMIT_NOFILE with prlimit(2): %v", err)
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 64 {
		c, err := net.DialTimeout("tcp", p.MQTTAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	brokertest.Eventually(t, "/readyz reports the listener that cannot accept", func() error {
		if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "listener mqtt") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	// The log line and the readiness change come from one failing accept,
	// but the log reaches the test through the process's stderr pipe:
	// wait for it.
	brokertest.Eventually(t, "a log line about the failing accepts", func() error {
		if !strings.Contains(p.Logs(), "listener cannot accept connections") {
			return fmt.Errorf("not logged yet:\n%s", p.Logs())
		}
		return nil
	})
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	brokertest.Eventually(t, "a client connects once descriptors are free", func() error {
		c, err := net.DialTimeout("tcp", p.MQTTAddr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		code, err := connectRaw(c, "after-exhaustion", "", "")
		if err != nil || code != 0 {
			return fmt.Errorf("CONNACK %#x, %v", code, err)
		}
		return nil
	})
	brokertest.Eventually(t, "/readyz is 200 again", func() error {
		if code, body := ready(); code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	resp, err := httpc.Get(p.APIURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(metrics), `jobsbroker_mqtt_accept_errors_total{listener="mqtt"} 0`) ||
		!strings.Contains(string(metrics), `jobsbroker_mqtt_accept_errors_total{listener="mqtt"}`) {
		t.Errorf("the failed accepts were not counted:\n%s", grepLines(string(metrics), "accept_errors"))
	}
}

// setNoFile sets the soft and hard RLIMIT_NOFILE of process pid.
func setNoFile(pid int, n uint64) error {
	lim := syscall.Rlimit{Cur: n, Max: n}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_NOFILE),
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		return e
	}
	return nil
}
