package broker_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/auth"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// startMTLS runs a broker with identity mtls on every kind of MQTT listener.
func startMTLS(t *testing.T, pki *brokertest.PKI) *brokertest.Instance {
	t.Helper()
	server := pki.Server("server")
	return brokertest.Start(t, func(c *broker.Config) {
		c.MQTTAddr = broker.Off
		c.MQTTTLSAddr = "127.0.0.1:0"
		c.MQTTALPNAddr = "127.0.0.1:0"
		c.WebSocketAddr = "127.0.0.1:0"
		c.TLSCert, c.TLSKey, c.ClientCA = server.Cert, server.Key, pki.CAFile
		c.Identity = auth.ModeMTLS
		c.Operators = []string{"ops-1"}
	})
}

// runJob takes a device through start-next and SUCCEEDED.
func runJob(t *testing.T, d *brokertest.Client, thing, job string) {
	t.Helper()
	base := "$aws/things/" + thing + "/jobs/"
	started := d.MustAccept(base+"start-next", map[string]any{"clientToken": "s"})
	if e, _ := started["execution"].(map[string]any); e == nil || e["jobId"] != job {
		t.Fatalf("%s start-next = %v", thing, started)
	}
	d.MustAccept(base+job+"/update", map[string]any{"status": "SUCCEEDED"})
}

func TestMTLSDeviceRunsJob(t *testing.T) {
	pki := brokertest.NewPKI(t)
	b := startMTLS(t, pki)
	cert := pki.Device("thing-1")
	createJob(t, b, "fw-1", "thing-1", "thing-2")
	for _, tc := range []struct{ name, url string }{
		{"tls", "ssl://" + b.MQTTTLSAddr()},
		{"websocket", "wss://" + b.WebSocketAddr() + "/mqtt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := brokertest.TryConnect(t, brokertest.Dial{URL: tc.url, ID: "thing-1", TLS: pki.ClientTLS(&cert)})
			if err != nil {
				t.Fatalf("a device with its own certificate was refused: %v", err)
			}
			out := d.MustAccept("$aws/things/thing-1/jobs/fw-1/get", map[string]any{})
			if e := out["execution"].(map[string]any); e["thingName"] != "thing-1" {
				t.Fatalf("describe = %v", out)
			}
			d.Close()
		})
	}
	d, err := brokertest.TryConnect(t, brokertest.Dial{URL: "ssl://" + b.MQTTTLSAddr(), ID: "thing-1", TLS: pki.ClientTLS(&cert)})
	if err != nil {
		t.Fatal(err)
	}
	runJob(t, d, "thing-1", "fw-1")
	ex, err := b.IoT().DescribeJobExecution(context.Background(), &iot.DescribeJobExecutionInput{JobId: aws.String("fw-1"), ThingName: aws.String("thing-1")})
	if err != nil || ex.Execution.Status != iottypes.JobExecutionStatusSucceeded {
		t.Fatalf("execution after the device's run: %+v, %v", ex, err)
	}
}

func TestMTLSRefusals(t *testing.T) {
	pki := brokertest.NewPKI(t)
	b := startMTLS(t, pki)
	url := "ssl://" + b.MQTTTLSAddr()
	other := pki.Device("thing-2")
	expired := pki.ExpiredDevice("thing-1")
	// A certificate from another CA.
	stranger := brokertest.NewPKI(t).Device("thing-1")
	cases := []struct {
		name string
		dial brokertest.Dial
	}{
		{"another thing's certificate", brokertest.Dial{URL: url, ID: "thing-1", TLS: pki.ClientTLS(&other)}},
		{"no certificate", brokertest.Dial{URL: url, ID: "thing-1", TLS: pki.ClientTLS(nil)}},
		{"expired certificate", brokertest.Dial{URL: url, ID: "thing-1", TLS: pki.ClientTLS(&expired)}},
		{"certificate of an unknown CA", brokertest.Dial{URL: url, ID: "thing-1", TLS: pki.ClientTLS(&stranger)}},
		{"plain websocket without TLS", brokertest.Dial{URL: "ws://" + b.WebSocketAddr() + "/mqtt", ID: "thing-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := brokertest.TryConnect(t, tc.dial); err == nil {
				c.Close()
				t.Fatal("connected")
			}
		})
	}
}

func TestMTLSAccessRules(t *testing.T) {
	pki := brokertest.NewPKI(t)
	b := startMTLS(t, pki)
	url := "ssl://" + b.MQTTTLSAddr()
	connect := func(thing string) *brokertest.Client {
		t.Helper()
		cert := pki.Device(thing)
		c, err := brokertest.TryConnect(t, brokertest.Dial{URL: url, ID: thing, TLS: pki.ClientTLS(&cert)})
		if err != nil {
			t.Fatalf("%s: %v", thing, err)
		}
		return c
	}
	createJob(t, b, "fw-1", "thing-1", "thing-2")
	d1 := connect("thing-1")
	for _, f := range []string{
		"$aws/things/thing-2/jobs/notify-next",
		"$aws/things/+/jobs/notify-next",
		"$aws/things/#",
		"#",
		"$aws/events/#",
		"$share/g/$aws/things/thing-2/jobs/#",
		"things/thing-2/status",
		"$aws/things/thing-1/shadow/update", // outside the jobs prefix
	} {
		if err := d1.TrySubscribe(f, 1); err == nil {
			t.Errorf("thing-1 may subscribe to %s", f)
		}
	}
	for _, f := range []string{
		"$aws/things/thing-1/jobs/notify-next",
		"$aws/things/thing-1/jobs/#",
		"$aws/things/thing-1/jobs/+/update/+",
		"things/thing-1/#",
	} {
		if err := d1.TrySubscribe(f, 1); err != nil {
			t.Errorf("thing-1 may not subscribe to its own %s: %v", f, err)
		}
	}

	// thing-2 listens to everything it may; thing-1's replies never reach it.
	d2 := connect("thing-2")
	if err := d2.TrySubscribe("$aws/things/thing-2/jobs/#", 1); err != nil {
		t.Fatal(err)
	}
	runJob(t, d1, "thing-1", "fw-1")
	// thing-2's own notifications of fw-1's creation may arrive after its
	// subscription; anything else is a leak.
	var msgs []brokertest.Message
	for _, m := range d2.Messages() {
		if m.Topic != "$aws/things/thing-2/jobs/notify" && m.Topic != "$aws/things/thing-2/jobs/notify-next" {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) > 0 {
		t.Errorf("thing-2 received %d messages meant for thing-1, first on %s", len(msgs), msgs[0].Topic)
	}

	// Publishing a request for another thing is refused: MQTT 3.1.1 has no
	// negative PUBACK, so the broker disconnects the client, as AWS does.
	intruder := connect("thing-1")
	intruder.Publish("$aws/things/thing-2/jobs/fw-1/update", `{"status":"FAILED"}`, 0)
	ex, err := b.IoT().DescribeJobExecution(context.Background(), &iot.DescribeJobExecutionInput{JobId: aws.String("fw-1"), ThingName: aws.String("thing-2")})
	if err != nil || ex.Execution.Status != iottypes.JobExecutionStatusQueued || ex.Execution.VersionNumber != 1 {
		t.Fatalf("thing-1 changed thing-2's execution: %+v, %v", ex.Execution, err)
	}
	brokertest.Eventually(t, "the client publishing for another thing at QoS 1 is disconnected", func() error {
		if err := intruder.TryPublish("$aws/things/thing-2/jobs/fw-1/update", `{"status":"FAILED"}`, 1); err == nil && intruder.Connected() {
			return errors.New("still connected")
		}
		return nil
	})
}

func TestOperatorReceivesEvents(t *testing.T) {
	pki := brokertest.NewPKI(t)
	b := startMTLS(t, pki)
	ops := pki.Device("ops-1")
	c, err := brokertest.TryConnect(t, brokertest.Dial{URL: "ssl://" + b.MQTTTLSAddr(), ID: "ops-1", TLS: pki.ClientTLS(&ops)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.TrySubscribe("$aws/events/#", 1); err != nil {
		t.Fatalf("operator: %v", err)
	}
	if _, err := b.IoT().UpdateEventConfigurations(context.Background(), &iot.UpdateEventConfigurationsInput{
		EventConfigurations: map[string]iottypes.Configuration{"JOB": {Enabled: true}},
	}); err != nil {
		t.Fatal(err)
	}
	createJob(t, b, "fw-ev", "thing-1")
	if _, err := b.IoT().CancelJob(context.Background(), &iot.CancelJobInput{JobId: aws.String("fw-ev")}); err != nil {
		t.Fatal(err)
	}
	if m := c.Expect("$aws/events/job/fw-ev/canceled").JSON(t); m["jobId"] != "fw-ev" {
		t.Fatalf("event = %v", m)
	}
	// A device is no operator.
	dev := pki.Device("thing-1")
	d, err := brokertest.TryConnect(t, brokertest.Dial{URL: "ssl://" + b.MQTTTLSAddr(), ID: "thing-1", TLS: pki.ClientTLS(&dev)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.TrySubscribe("$aws/events/job/#", 1); err == nil {
		t.Error("a device may subscribe to job events")
	}
}

func TestALPNListener(t *testing.T) {
	pki := brokertest.NewPKI(t)
	b := startMTLS(t, pki)
	cert := pki.Device("thing-1")
	for _, addr := range []string{b.MQTTALPNAddr(), b.MQTTTLSAddr()} {
		conf := pki.ClientTLS(&cert)
		conf.NextProtos = []string{"x-amzn-mqtt-ca"}
		conn, err := tls.Dial("tcp", addr, conf)
		if err != nil {
			t.Fatalf("%s: TLS with ALPN x-amzn-mqtt-ca: %v", addr, err)
		}
		if p := conn.ConnectionState().NegotiatedProtocol; p != "x-amzn-mqtt-ca" {
			t.Errorf("%s negotiated %q", addr, p)
		}
		conn.Close()
	}
	// And an MQTT session over it, as the AWS IoT Device Client opens one.
	conf := pki.ClientTLS(&cert)
	conf.NextProtos = []string{"x-amzn-mqtt-ca"}
	d, err := brokertest.TryConnect(t, brokertest.Dial{URL: "ssl://" + b.MQTTALPNAddr(), ID: "thing-1", TLS: conf})
	if err != nil {
		t.Fatal(err)
	}
	d.MustAccept("$aws/things/thing-1/jobs/get", map[string]any{})
}

func TestPasswordIdentity(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwords")
	var lines []string
	for _, tp := range [][2]string{{"thing-1", "s3cret"}, {"ops-1", "ops-pass"}} {
		lines = append(lines, passwordLine(t, tp[0], tp[1]))
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, func(c *broker.Config) {
		c.Identity = auth.ModePassword
		c.PasswordFile = file
		c.MaxConnectionsPerIdentity = 2
	})
	url := "tcp://" + b.MQTTAddr()
	login := func(id, user, pass string) (*brokertest.Client, error) {
		return brokertest.TryConnect(t, brokertest.Dial{URL: url, ID: id, Username: user, Password: pass})
	}
	if _, err := login("thing-1", "thing-1", "wrong"); err == nil {
		t.Error("wrong password accepted")
	}
	if _, err := login("thing-1", "", ""); err == nil {
		t.Error("no username accepted")
	}
	if _, err := login("x", "thing-9", "s3cret"); err == nil {
		t.Error("unknown thing accepted")
	}
	d, err := login("thing-1", "thing-1", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	createJob(t, b, "fw-1", "thing-1")
	runJob(t, d, "thing-1", "fw-1")
	if err := d.TrySubscribe("$aws/things/thing-2/jobs/#", 1); err == nil {
		t.Error("thing-1 may subscribe to thing-2's topics")
	}
	// Connections per identity: a second client ID is allowed, a third is
	// not, and reconnecting with a connected client ID takes it over.
	if _, err := login("thing-1-b", "thing-1", "s3cret"); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	if _, err := login("thing-1-c", "thing-1", "s3cret"); err == nil {
		t.Error("a third connection of one identity was accepted with the limit at 2")
	}
	if _, err := login("thing-1-b", "thing-1", "s3cret"); err != nil {
		t.Errorf("taking over a connected client ID: %v", err)
	}

	// SIGHUP's reload reads a changed password file; connected clients stay.
	if err := os.WriteFile(file, []byte(passwordLine(t, "thing-1", "new-pass")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := login("thing-1-d", "thing-1", "s3cret"); err == nil {
		t.Error("the old password still works after a reload")
	}
	if !d.Connected() {
		t.Error("reloading dropped a connected client")
	}
}

func TestCertificateReload(t *testing.T) {
	pki := brokertest.NewPKI(t)
	first := pki.Server("server")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(first.Cert, certFile)
	copyFile(first.Key, keyFile)
	b := startWithCert(t, pki, certFile, keyFile)
	cert := pki.Device("thing-1")
	serial := func() string {
		conn, err := tls.Dial("tcp", b.MQTTTLSAddr(), pki.ClientTLS(&cert))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	d, err := brokertest.TryConnect(t, brokertest.Dial{URL: "ssl://" + b.MQTTTLSAddr(), ID: "thing-1", TLS: pki.ClientTLS(&cert)})
	if err != nil {
		t.Fatal(err)
	}
	second := pki.Server("server-2")
	copyFile(second.Cert, certFile)
	copyFile(second.Key, keyFile)
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	want := second.Pair.Leaf
	if want == nil {
		want, _ = x509.ParseCertificate(second.Pair.Certificate[0])
	}
	if after := serial(); after == before || after != want.SerialNumber.String() {
		t.Fatalf("after reload the listener presents serial %s (before %s, want %s)", after, before, want.SerialNumber)
	}
	d.MustAccept("$aws/things/thing-1/jobs/get", map[string]any{})

	// A broken file is refused and the material in use is kept.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(); err == nil {
		t.Fatal("a broken key file reloaded")
	}
	if s := serial(); s != want.SerialNumber.String() {
		t.Fatalf("a failed reload changed the certificate to serial %s", s)
	}
}

func startWithCert(t *testing.T, pki *brokertest.PKI, cert, key string) *brokertest.Instance {
	t.Helper()
	return brokertest.Start(t, func(c *broker.Config) {
		c.MQTTTLSAddr = "127.0.0.1:0"
		c.TLSCert, c.TLSKey, c.ClientCA = cert, key, pki.CAFile
		c.Identity = auth.ModeMTLS
	})
}

func TestLimits(t *testing.T) {
	b := brokertest.Start(t)
	d, err := brokertest.TryConnect(t, brokertest.Dial{URL: "tcp://" + b.MQTTAddr(), ID: "thing-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.TrySubscribe("things/"+strings.Repeat("x", 250), 0); err == nil {
		t.Error("a filter over 256 bytes was accepted")
	}
	// A packet over 128 KB ends the connection.
	createJob(t, b, "fw-1", "thing-1")
	d.Publish("things/thing-1/big", strings.Repeat("x", 129<<10), 0)
	brokertest.Eventually(t, "the connection that sent 129 KB is closed", func() error {
		if d.Connected() {
			return errors.New("still connected")
		}
		return nil
	})
}

func TestSecureByDefault(t *testing.T) {
	cases := []struct {
		name    string
		cfg     broker.Config
		wantErr string
	}{
		{"defaults bind loopback", broker.Config{}, ""},
		{"network MQTT without identity", broker.Config{MQTTAddr: ":1883"}, `mqtt_addr ":1883"`},
		{"network API without credentials", broker.Config{APIAddr: "0.0.0.0:8080"}, `api_addr "0.0.0.0:8080"`},
		{"allow anonymous", broker.Config{MQTTAddr: ":1883", APIAddr: ":8080", JobsAddr: ":8081", AllowAnonymous: true}, ""},
		{"mtls without a CA", broker.Config{Identity: auth.ModeMTLS, TLSCert: "c", TLSKey: "k"}, "needs client_ca"},
		{"TLS listener without a certificate", broker.Config{MQTTTLSAddr: "127.0.0.1:8883"}, "need tls_cert"},
	}
	for _, tc := range cases {
		err := broker.CheckConfig(tc.cfg)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.wantErr)
		}
	}
}

// passwordLine is auth.PasswordLine at bcrypt's lowest cost, to keep the
// test fast under the race detector.
// TestConnectionLimitHoldsUnderConcurrentConnects connects many clients of
// one identity at once: no more than the limit may get in, however the
// connections interleave (a place is taken when a client is
// authenticated, not later when its session is established).
func TestConnectionLimitHoldsUnderConcurrentConnects(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwords")
	if err := os.WriteFile(file, []byte(passwordLine(t, "thing-1", "s3cret")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const limit, tries = 2, 12
	b := brokertest.Start(t, func(c *broker.Config) {
		c.Identity = auth.ModePassword
		c.PasswordFile = file
		c.MaxConnectionsPerIdentity = limit
	})
	// Dial every connection first, then send all the CONNECTs at once.
	conns := make([]net.Conn, tries)
	for i := range conns {
		c, err := net.Dial("tcp", b.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	var accepted atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, err := connectRaw(c, fmt.Sprintf("thing-1-%d", i), "thing-1", "s3cret")
			if err != nil {
				t.Errorf("connection %d: %v", i, err)
			} else if code == 0 {
				accepted.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := accepted.Load(); n != limit {
		t.Fatalf("%d of %d concurrent connections of one identity got in, want the limit, %d", n, tries, limit)
	}
}

// connectRaw sends an MQTT 3.1.1 clean-session CONNECT on c, with a
// username and password unless user is "", and returns the CONNACK's
// return code (0 is accepted). The connection is left open.
func connectRaw(c net.Conn, id, user, pass string) (byte, error) {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: id,
		},
	}
	if user != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(user)
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(pass)
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		return 0, err
	}
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		return 0, fmt.Errorf("no CONNACK: %w", err)
	}
	if ack[0] != 0x20 {
		return 0, fmt.Errorf("not a CONNACK: % x", ack)
	}
	return ack[3], nil
}

func passwordLine(t *testing.T, thing, pw string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return thing + ":" + string(hash)
}

func TestPprofListener(t *testing.T) {
	b := brokertest.Start(t, func(c *broker.Config) { c.PprofAddr = "127.0.0.1:0" })
	resp, err := http.Get("http://" + b.PprofAddr() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof: %d %.100s", resp.StatusCode, body)
	}
	_, err = broker.New(broker.Config{PprofAddr: ":0", DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", JobsAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "pprof_addr") {
		t.Fatalf("a pprof listener beyond loopback: %v", err)
	}
}

// TestFailedStartReleasesListeners: when a later MQTT listener cannot
// bind, New fails and gives back the ports it had bound before, so the
// next attempt (a restart by systemd, a test) can take them.
func TestFailedStartReleasesListeners(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mqttAddr := free.Addr().String()
	free.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = broker.New(broker.Config{DataDir: t.TempDir(), MQTTAddr: mqttAddr, WebSocketAddr: taken.Addr().String(),
		APIAddr: "127.0.0.1:0", JobsAddr: "127.0.0.1:0", Logger: brokertest.Logger(t)})
	if err == nil || !strings.Contains(err.Error(), "websocket") {
		t.Fatalf("New with the WebSocket address taken: %v", err)
	}
	again, err := net.Listen("tcp", mqttAddr)
	if err != nil {
		t.Fatalf("the MQTT port is still bound after New failed: %v", err)
	}
	again.Close()
}
