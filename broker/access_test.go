package broker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/auth"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// identityBroker is a broker under one identity mode with things thing-1
// and thing-2, and a way to open a raw connection as either.
type identityBroker struct {
	*brokertest.Instance
	addr string
	dial func(t *testing.T, thing string) *rawClient
	// login is the CONNECT of thing with client ID id.
	login func(thing, id string) rawConnect
}

// startIdentity starts a broker under mode (mtls or password), in which a
// thing may also use fleet/{thing}/status, readable by every thing.
func startIdentity(t *testing.T, mode auth.Mode, mod ...func(*broker.Config)) *identityBroker {
	t.Helper()
	rules := []string{"things/{thing}/#", "fleet/+/status"}
	ib := &identityBroker{}
	switch mode {
	case auth.ModeMTLS:
		pki := brokertest.NewPKI(t)
		server := pki.Server("server")
		ib.Instance = brokertest.Start(t, append([]func(*broker.Config){func(c *broker.Config) {
			c.MQTTAddr, c.MQTTTLSAddr = broker.Off, "127.0.0.1:0"
			c.TLSCert, c.TLSKey, c.ClientCA = server.Cert, server.Key, pki.CAFile
			c.Identity, c.TopicRules = auth.ModeMTLS, rules
		}}, mod...)...)
		ib.addr = ib.MQTTTLSAddr()
		ib.dial = func(t *testing.T, thing string) *rawClient {
			cert := pki.Device(thing)
			return dialRaw(t, ib.addr, pki.ClientTLS(&cert))
		}
		ib.login = func(_, id string) rawConnect { return rawConnect{id: id} }
	case auth.ModePassword:
		file := filepath.Join(t.TempDir(), "passwords")
		lines := passwordLine(t, "thing-1", "pw-1") + "\n" + passwordLine(t, "thing-2", "pw-2") + "\n"
		if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
			t.Fatal(err)
		}
		ib.Instance = brokertest.Start(t, append([]func(*broker.Config){func(c *broker.Config) {
			c.Identity, c.PasswordFile, c.TopicRules = auth.ModePassword, file, rules
		}}, mod...)...)
		ib.addr = ib.MQTTAddr()
		ib.dial = func(t *testing.T, _ string) *rawClient { return dialRaw(t, ib.addr, nil) }
		ib.login = func(thing, id string) rawConnect {
			return rawConnect{id: id, user: thing, pass: "pw-" + strings.TrimPrefix(thing, "thing-")}
		}
	default:
		t.Fatalf("mode %s", mode)
	}
	return ib
}

// notRetained checks that a fresh subscription of thing to its own
// notify-next gets no retained message: it subscribes, then asks for its
// pending jobs; a retained message is written right after the SUBACK, so
// it would come before the reply.
func (ib *identityBroker) notRetained(t *testing.T, thing string) {
	t.Helper()
	c := ib.dial(t, thing)
	if code, _ := c.connect(ib.login(thing, thing)); code != 0 {
		t.Fatalf("%s cannot connect to check its notify-next: %#x", thing, code)
	}
	base := "$aws/things/" + thing + "/jobs/"
	if _, codes := c.subscribe(1, 1, base+"notify-next", base+"get/accepted"); codes[0] >= 0x80 || codes[1] >= 0x80 {
		t.Fatalf("%s may not subscribe to its own topics: % x", thing, codes)
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: base + "get", Payload: []byte(`{}`)})
	for {
		pk := c.expect(packets.Publish)
		switch pk.TopicName {
		case base + "notify-next":
			t.Fatalf("%s received a message on its notify-next it never asked for (retained %v): %s", thing, pk.FixedHeader.Retain, pk.Payload)
		case base + "get/accepted":
			return
		}
	}
}

// TestWillIsCheckedLikeAPublish: a will is a publish mochi makes on the
// client's behalf, without asking the access rules. A thing that connects
// with a will on another thing's notify-next (retained, QoS 1) and drops
// its connection would otherwise hand that thing a forged job, and every
// later subscriber too. The CONNECT is refused instead, with CONNACK "not
// authorized", and nothing reaches the other thing; a will the thing could
// publish itself goes out as before.
func TestWillIsCheckedLikeAPublish(t *testing.T) {
	forged := `{"execution":{"jobId":"evil","status":"QUEUED","jobDocument":{"url":"http://attacker/fw.bin"}}}`
	for _, mode := range []auth.Mode{auth.ModeMTLS, auth.ModePassword} {
		t.Run(string(mode), func(t *testing.T) {
			ib := startIdentity(t, mode)
			for _, tc := range []struct {
				name string
				will rawWill
			}{
				{"other thing's notify-next, retained", rawWill{topic: "$aws/things/thing-2/jobs/notify-next", payload: forged, qos: 1, retain: true}},
				{"other thing's notify", rawWill{topic: "$aws/things/thing-2/jobs/notify", payload: forged, qos: 1}},
				{"own reply topic", rawWill{topic: "$aws/things/thing-1/jobs/start-next/accepted", payload: forged}},
				{"own request topic", rawWill{topic: "$aws/things/thing-1/jobs/get", payload: "{}"}},
				{"events", rawWill{topic: "$aws/events/job/evil/completed", payload: "{}"}},
				{"other thing's topic", rawWill{topic: "things/thing-2/cmd", payload: "reboot", retain: true}},
				{"wildcard", rawWill{topic: "fleet/+/status", payload: "x"}},
			} {
				for _, v := range []byte{4, 5} {
					t.Run(fmt.Sprintf("%s/mqtt%d", tc.name, v), func(t *testing.T) {
						c := ib.dial(t, "thing-1")
						p := ib.login("thing-1", "thing-1")
						p.version, p.will = v, &tc.will
						code, _ := c.connect(p)
						want := packets.Err3NotAuthorized.Code
						if v == 5 {
							want = packets.ErrNotAuthorized.Code
						}
						if code != want {
							t.Errorf("CONNECT with a will on %s answered %#x, want %#x (not authorized)", tc.will.topic, code, want)
						}
						c.conn.Close() // dropped without DISCONNECT: the will would go now
					})
				}
			}
			ib.notRetained(t, "thing-2")

			// A will on a topic the thing may publish is delivered.
			listener := ib.dial(t, "thing-2")
			if code, _ := listener.connect(ib.login("thing-2", "thing-2")); code != 0 {
				t.Fatalf("thing-2: %#x", code)
			}
			if _, codes := listener.subscribe(1, 1, "fleet/+/status"); codes[0] >= 0x80 {
				t.Fatalf("thing-2 may not subscribe to fleet/+/status: % x", codes)
			}
			c := ib.dial(t, "thing-1")
			p := ib.login("thing-1", "thing-1")
			p.will = &rawWill{topic: "fleet/thing-1/status", payload: "offline", qos: 1, retain: true}
			if code, _ := c.connect(p); code != 0 {
				t.Fatalf("a will the thing may publish was refused: %#x", code)
			}
			c.conn.Close()
			if m := listener.expect(packets.Publish); m.TopicName != "fleet/thing-1/status" || string(m.Payload) != "offline" {
				t.Fatalf("thing-2 received %s %q, want thing-1's will", m.TopicName, m.Payload)
			}
		})
	}
}

// TestWillOnBrokerTopicsWithoutIdentity: even with identity none, where no
// access rule applies, a will may not be published on the broker's $
// topics: the jobs hook drops a device's publishes on reply and
// notification topics, and a will would go around it.
func TestWillOnBrokerTopicsWithoutIdentity(t *testing.T) {
	b := brokertest.Start(t)
	c := dialRaw(t, b.MQTTAddr(), nil)
	code, _ := c.connect(rawConnect{id: "thing-1", will: &rawWill{topic: "$aws/things/thing-2/jobs/notify-next", payload: "{}", retain: true}})
	if code != packets.Err3NotAuthorized.Code {
		t.Fatalf("a will on another thing's notify-next answered %#x, want 0x05 (not authorized)", code)
	}
	c = dialRaw(t, b.MQTTAddr(), nil)
	if code, _ := c.connect(rawConnect{id: "thing-1", will: &rawWill{topic: "things/thing-1/status", payload: "offline"}}); code != 0 {
		t.Fatalf("a will on an ordinary topic was refused: %#x", code)
	}
}

// TestPasswordClientIDBelongsToIdentity: under identity password a
// client ID is its thing's name or starts with the name and "-"; another
// client ID is refused with CONNACK "identifier rejected", so a thing can
// neither disconnect another thing by taking its client ID nor inherit its
// session.
func TestPasswordClientIDBelongsToIdentity(t *testing.T) {
	ib := startIdentity(t, auth.ModePassword)
	victim := ib.dial(t, "thing-2")
	if code, _ := victim.connect(rawConnect{id: "thing-2", user: "thing-2", pass: "pw-2", persistent: true}); code != 0 {
		t.Fatalf("thing-2: %#x", code)
	}
	for _, tc := range []struct {
		id      string
		version byte
		want    byte
	}{
		{"thing-2", 4, packets.Err3ClientIdentifierNotValid.Code},
		{"thing-2", 5, packets.ErrClientIdentifierNotValid.Code},
		{"thing-2-x", 4, packets.Err3ClientIdentifierNotValid.Code},
		{"thing-10", 4, packets.Err3ClientIdentifierNotValid.Code},
		{"other", 5, packets.ErrClientIdentifierNotValid.Code},
		{"thing-1", 4, 0},
		{"thing-1-dashboard", 5, 0},
	} {
		c := ib.dial(t, "thing-1")
		code, present := c.connect(rawConnect{id: tc.id, user: "thing-1", pass: "pw-1", version: tc.version, persistent: true})
		if code != tc.want {
			t.Errorf("thing-1 with client ID %s (MQTT %d): CONNACK %#x, want %#x", tc.id, tc.version, code, tc.want)
		}
		if present {
			t.Errorf("thing-1 with client ID %s inherited a session", tc.id)
		}
	}
	// thing-2 was never taken over.
	victim.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if _, err := victim.read(5 * time.Second); err != nil {
		t.Fatalf("thing-2 lost its connection: %v", err)
	}
}

// TestMTLSClientIDOtherThanCN: a device whose client ID is not its
// certificate's thing is told so: CONNACK "identifier rejected" (0x02) in
// MQTT 3.1.1, "client identifier not valid" (0x85) in MQTT 5, not "bad user
// name or password", which would send its owner after its credentials.
func TestMTLSClientIDOtherThanCN(t *testing.T) {
	ib := startIdentity(t, auth.ModeMTLS)
	for v, want := range map[byte]byte{4: 0x02, 5: 0x85} {
		c := ib.dial(t, "thing-1")
		if code, _ := c.connect(rawConnect{id: "thing-2", version: v}); code != want {
			t.Errorf("MQTT %d: CONNACK %#x, want %#x", v, code, want)
		}
	}
}

// TestLoginBackoff: after repeated failed password logins, an identity
// must wait before its next login is even checked (the right password
// included), and so must an address from which many logins failed. A
// refusal for waiting says "server unavailable" (MQTT 3.1.1) or
// "connection rate exceeded" (MQTT 5), and is counted.
func TestLoginBackoff(t *testing.T) {
	ib := startIdentity(t, auth.ModePassword, func(c *broker.Config) { c.LoginBackoff = time.Minute })
	try := func(user, pass string, v byte) byte {
		t.Helper()
		c := ib.dial(t, user)
		code, _ := c.connect(rawConnect{id: user, user: user, pass: pass, version: v})
		return code
	}
	const bad, waitV3, waitV5 = 0x04, 0x03, 0x9F
	// thing-1: three failures are free, the fourth starts a wait.
	for i := range 4 {
		if code := try("thing-1", "wrong", 4); code != bad {
			t.Fatalf("failed login %d: %#x, want %#x", i+1, code, bad)
		}
	}
	if code := try("thing-1", "pw-1", 4); code != waitV3 {
		t.Fatalf("the right password right after four failures: %#x, want %#x (wait)", code, waitV3)
	}
	if code := try("thing-1", "pw-1", 5); code != waitV5 {
		t.Fatalf("MQTT 5, the right password right after four failures: %#x, want %#x", code, waitV5)
	}
	if code := try("thing-2", "pw-2", 4); code != 0 {
		t.Fatalf("another thing from the same address, after 4 failures there: %#x, want accepted", code)
	}
	// The first wait is a second; then the right password works again.
	brokertest.Eventually(t, "thing-1 logs in once its wait is over", func() error {
		if code := try("thing-1", "pw-1", 4); code != 0 {
			return fmt.Errorf("CONNACK %#x", code)
		}
		return nil
	})
	// The address: ten failures are free (over as many identities, each
	// within its own allowance), the eleventh starts a wait for everyone
	// from there.
	for i := range 11 {
		if code := try(fmt.Sprintf("guess-%d", i), "x", 4); code != bad {
			t.Fatalf("guess %d: %#x", i, code)
		}
	}
	if code := try("thing-2", "pw-2", 4); code != waitV3 {
		t.Fatalf("a login from an address with eleven failures in a row: %#x, want %#x (wait)", code, waitV3)
	}
	families := scrape(t, ib.Instance)
	if n := value(t, families, "jobsbroker_mqtt_login_failures_total", "reason=backoff"); n < 3 {
		t.Errorf("jobsbroker_mqtt_login_failures_total{reason=backoff} = %v, want at least 3", n)
	}
	if n := value(t, families, "jobsbroker_mqtt_login_failures_total", "reason=bad_login"); n != 15 {
		t.Errorf("jobsbroker_mqtt_login_failures_total{reason=bad_login} = %v, want 15", n)
	}
}
