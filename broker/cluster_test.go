package broker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/jackc/pgx/v5"
	"github.com/mochi-mqtt/server/v2/packets"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/broker/cluster"
	"github.com/jobsbroker/jobsbroker/store"
)

// startCluster runs n nodes on one PostgreSQL schema and one NATS server
// (run in the test).
func startCluster(t *testing.T, n int, mod ...func(*broker.Config)) []*brokertest.Instance {
	t.Helper()
	return startClusterOn(t, brokertest.PostgresURL(t), n, mod...)
}

func startClusterOn(t *testing.T, url string, n int, mod ...func(*broker.Config)) []*brokertest.Instance {
	t.Helper()
	nats := brokertest.NATS(t).ClientURL()
	nodes := make([]*brokertest.Instance, n)
	for i := range nodes {
		nodes[i] = brokertest.Start(t, append([]func(*broker.Config){func(c *broker.Config) {
			c.Store, c.StoreURL, c.NodeID, c.ClusterNATSURL = broker.StorePostgres, url, fmt.Sprintf("node-%d", i), nats
		}}, mod...)...)
	}
	return nodes
}

// TestClusterRoutesPublishes: 30 publishers and 30 subscribers spread over
// 3 nodes, at QoS 1: every subscriber gets every message exactly once,
// whichever node either side is on. A third of the subscribers hold two
// filters that both match (their node gets two copies from NATS and
// delivers one); MQTT 3.1.1 and MQTT 5 clients are mixed.
func TestClusterRoutesPublishes(t *testing.T) {
	nodes := startCluster(t, 3)
	const clients, each = 30, 5
	subs := make([]*brokertest.Client, clients)
	for i := range subs {
		subs[i] = brokertest.Connect(t, nodes[i%3].MQTTAddr(), fmt.Sprintf("sub-%d", i), 4+i%2)
		subs[i].Subscribe("fleet/+/telemetry", 1)
		if i%3 == 0 {
			subs[i].Subscribe("fleet/#", 1)
		}
	}
	pubs := make([]*brokertest.Client, clients)
	for i := range pubs {
		pubs[i] = brokertest.Connect(t, nodes[(i+1)%3].MQTTAddr(), fmt.Sprintf("pub-%d", i), 4+(i+1)%2)
	}
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Go(func() {
			for k := range each {
				p.Publish(fmt.Sprintf("fleet/pub-%d/telemetry", i), fmt.Sprintf("%d-%d", i, k), 1)
			}
		})
	}
	wg.Wait()
	// A last message from each node: whatever was routed before it has
	// arrived once it has (each node's messages travel in order).
	for i, n := range nodes {
		brokertest.Connect3(t, n.MQTTAddr(), fmt.Sprintf("last-%d", i)).Publish("fleet/last/telemetry", fmt.Sprintf("last-%d", i), 1)
	}
	want := clients*each + len(nodes)
	for _, s := range subs {
		brokertest.Eventually(t, s.ID+" gets every message", func() error {
			if got := len(s.Received()); got < want {
				return fmt.Errorf("%d of %d messages", got, want)
			}
			return nil
		})
	}
	for _, s := range subs {
		seen := map[string]int{}
		for _, m := range s.Received() {
			seen[string(m.Payload)]++
			if m.QoS != 1 {
				t.Errorf("%s got %q at QoS %d", s.ID, m.Payload, m.QoS)
			}
		}
		for p, n := range seen {
			if n != 1 {
				t.Errorf("%s got %q %d times", s.ID, p, n)
			}
		}
		if len(seen) != want {
			t.Errorf("%s got %d distinct messages, want %d", s.ID, len(seen), want)
		}
	}
	if got := value(t, scrape(t, nodes[0]), "jobsbroker_cluster_messages_total", "direction=duplicate"); got == 0 {
		t.Error("node 0 dropped no copies, though its subscribers hold overlapping filters")
	}
}

// TestClusterNoLoop: a publish reaches a subscriber on the publisher's own
// node once (it is not sent back to it through NATS), and a node with no
// subscriber gets nothing from NATS.
func TestClusterNoLoop(t *testing.T) {
	nodes := startCluster(t, 2)
	sub := brokertest.Connect3(t, nodes[0].MQTTAddr(), "sub")
	sub.Subscribe("loop/#", 1)
	pub := brokertest.Connect3(t, nodes[0].MQTTAddr(), "pub")
	pub.Publish("loop/a", "one", 1)
	pub.Publish("loop/b", "two", 1)
	other := brokertest.Connect3(t, nodes[1].MQTTAddr(), "other")
	other.Publish("loop/c", "three", 1)
	for _, topic := range []string{"loop/a", "loop/b", "loop/c"} {
		sub.Expect(topic)
	}
	// A last one from node 1: a copy of any of the three would be there
	// before it.
	other.Publish("loop/d", "four", 1)
	sub.Expect("loop/d")
	if got := sub.Received(); len(got) != 0 {
		t.Fatalf("%d messages beyond the four: %v", len(got), got)
	}
	if got := value(t, scrape(t, nodes[1]), "jobsbroker_cluster_messages_total", "direction=received"); got != 0 {
		t.Fatalf("node 1, with no subscriber, received %v publishes", got)
	}
}

// TestClusterJobsRepliesStayLocal: a jobs request is answered to the
// requester alone; a client on another node subscribed to the reply
// topic sees nothing, and the request itself is not routed.
func TestClusterJobsRepliesStayLocal(t *testing.T) {
	nodes := startCluster(t, 2)
	spy := brokertest.Connect3(t, nodes[1].MQTTAddr(), "spy")
	spy.Subscribe("$aws/things/dev/jobs/#", 1)
	dev := brokertest.Connect3(t, nodes[0].MQTTAddr(), "dev")
	dev.Subscribe("$aws/things/dev/jobs/get/+", 1)
	dev.MustAccept("$aws/things/dev/jobs/get", map[string]any{"clientToken": "t1"})
	// A publish the spy may see, after the request: once it is there,
	// anything routed before it would be too.
	brokertest.Connect3(t, nodes[0].MQTTAddr(), "x").Publish("$aws/things/dev/jobs/marker", "m", 1)
	if m, ok := spy.Wait(2*time.Second, "$aws/things/dev/jobs/get/accepted"); ok {
		t.Fatalf("the other node's client got the reply: %s", m.Payload)
	}
	if got := value(t, scrape(t, nodes[0]), "jobsbroker_cluster_messages_total", "direction=sent"); got > 1 {
		t.Fatalf("node 0 sent %v publishes to NATS; only the marker may go", got)
	}
}

// TestClusterRetained: a retained message set on one node is delivered to
// a subscriber that subscribes later on any node, also on a node that
// started after it was set, and deleting it on another node deletes it
// everywhere.
func TestClusterRetained(t *testing.T) {
	nodes := startCluster(t, 2)
	a := brokertest.DialRaw(t, nodes[0].MQTTAddr(), brokertest.RawOptions{ID: "setter", Clean: true})
	a.Publish("state/lamp", []byte("on"), 1, true)
	for i, n := range nodes {
		c := brokertest.DialRaw(t, n.MQTTAddr(), brokertest.RawOptions{ID: fmt.Sprintf("late-%d", i), Clean: true})
		c.Subscribe("state/+", 1, 0)
		if pk := c.ExpectPublish(); string(pk.Payload) != "on" || !pk.FixedHeader.Retain {
			t.Fatalf("node %d: retained %q retain=%v", i, pk.Payload, pk.FixedHeader.Retain)
		}
	}
	b := brokertest.DialRaw(t, nodes[1].MQTTAddr(), brokertest.RawOptions{ID: "clearer", Clean: true})
	b.Publish("state/lamp", nil, 1, true)
	b.Publish("state/door", []byte("shut"), 1, true)
	// The door's message comes after the lamp's deletion: once node 0 has
	// it, the deletion is done there too.
	brokertest.Eventually(t, "node 0 has the door's retained message", func() error {
		c := brokertest.DialRaw(t, nodes[0].MQTTAddr(), brokertest.RawOptions{ID: "probe", Clean: true})
		defer c.Disconnect()
		c.Subscribe("state/door", 1, 0)
		if _, ok := c.NextPublish(time.Second); !ok {
			return fmt.Errorf("no retained message on state/door")
		}
		return nil
	})
	c := brokertest.DialRaw(t, nodes[0].MQTTAddr(), brokertest.RawOptions{ID: "after-delete", Clean: true})
	c.Subscribe("state/lamp", 1, 0)
	c.Subscribe("state/door", 1, 0)
	if pk := c.ExpectPublish(); pk.TopicName != "state/door" {
		t.Fatalf("after the deletion node 0 still sends %s %q", pk.TopicName, pk.Payload)
	}
}

// TestClusterTakeover: a client that connects to node B with the client
// ID of a client connected to node A takes it over: A sends an MQTT 5
// client DISCONNECT 0x8E (session taken over) and closes an MQTT 3.1.1
// client's connection.
func TestClusterTakeover(t *testing.T) {
	nodes := startCluster(t, 2)
	for _, v := range []byte{4, 5} {
		id := fmt.Sprintf("dev-v%d", v)
		first := brokertest.DialRaw(t, nodes[0].MQTTAddr(), brokertest.RawOptions{ID: id, Version: v, Clean: true})
		brokertest.DialRaw(t, nodes[1].MQTTAddr(), brokertest.RawOptions{ID: id, Version: v, Clean: true})
		if v == 5 {
			pk, ok := first.NextPacket(5*time.Second, packets.Disconnect)
			if !ok || pk.ReasonCode != packets.ErrSessionTakenOver.Code {
				t.Fatalf("MQTT 5: got %v (ok %v), want DISCONNECT 0x8E", pk.ReasonCode, ok)
			}
		}
		if !first.Closed(5 * time.Second) {
			t.Fatalf("MQTT %d: the first connection is still open", v)
		}
	}
}

// TestClusterSessionResume: a persistent session made on node A, with a
// QoS 1 message queued while its client was away, is resumed on node B
// while A runs: session present, the queued message, and its
// subscription, through which B delivers what is published next on A. A
// forgets the session: a later publish reaches the client once.
func TestClusterSessionResume(t *testing.T) {
	nodes := startCluster(t, 2)
	for _, v := range []byte{4, 5} {
		id, topic := fmt.Sprintf("roamer-v%d", v), fmt.Sprintf("cmd/v%d", v)
		dev := persistent(t, nodes[0].MQTTAddr(), id, v)
		dev.Subscribe(topic, 1, 0)
		dev.Disconnect()
		pub := brokertest.Connect3(t, nodes[0].MQTTAddr(), fmt.Sprintf("pub-v%d", v))
		pub.Publish(topic, "while-away", 1)
		dev = persistent(t, nodes[1].MQTTAddr(), id, v)
		if !dev.SessionPresent {
			t.Fatalf("MQTT %d: node B did not resume the session", v)
		}
		if got := payloads(receive(t, dev, 1)); got[0] != "while-away" {
			t.Fatalf("MQTT %d: got %v", v, got)
		}
		pub.Publish(topic, "live", 1)
		pub.Publish(topic, "again", 1)
		if got := payloads(receive(t, dev, 2)); got[0] != "live" || got[1] != "again" {
			t.Fatalf("MQTT %d: after resuming got %v", v, got)
		}
		if pk, ok := dev.NextPublish(500 * time.Millisecond); ok {
			t.Fatalf("MQTT %d: a copy more: %q", v, pk.Payload)
		}
	}
	brokertest.Eventually(t, "node A holds no session", func() error {
		if n := value(t, scrape(t, nodes[0]), "jobsbroker_sessions", "state=offline"); n != 0 {
			return fmt.Errorf("%v offline sessions on node A", n)
		}
		return nil
	})
}

// TestClusterSessionsOfStoppedNode: persistent sessions held by a node
// that has just stopped are owed what is published for them on the other
// nodes from that moment: each publish is acknowledged once a node has
// taken the sessions over and written it for them (without waiting for
// the nodes to notice the silence), and the devices get every message
// when they come back, on either node. (cmd/jobsbroker's
// TestClusterNodeKilledWhilePublishing kills the node instead.)
func TestClusterSessionsOfStoppedNode(t *testing.T) {
	nodes := startCluster(t, 3)
	for _, v := range []byte{4, 5} {
		dev := persistent(t, nodes[0].MQTTAddr(), fmt.Sprintf("held-v%d", v), v)
		dev.Subscribe("cmd/held", 1, 0)
		dev.Disconnect()
	}
	nodes[0].Stop(t)
	var sent []string
	for i := range 20 {
		pub := brokertest.Connect3(t, nodes[1+i%2].MQTTAddr(), fmt.Sprintf("pub-%d", i))
		p := fmt.Sprintf("m%02d", i)
		pub.Publish("cmd/held", p, 1)
		sent = append(sent, p)
	}
	for i, v := range []byte{4, 5} {
		dev := persistent(t, nodes[1+i].MQTTAddr(), fmt.Sprintf("held-v%d", v), v)
		if !dev.SessionPresent {
			t.Fatalf("MQTT %d: the session is gone", v)
		}
		got := map[string]int{}
		for _, pk := range receive(t, dev, len(sent)) {
			dev.Ack(pk.PacketID)
			got[string(pk.Payload)]++
		}
		for _, p := range sent {
			if got[p] != 1 {
				t.Errorf("MQTT %d: %s came %d times", v, p, got[p])
			}
		}
	}
	if n := value(t, scrape(t, nodes[1]), "jobsbroker_cluster_publishes_rescued_total") +
		value(t, scrape(t, nodes[2]), "jobsbroker_cluster_publishes_rescued_total"); n == 0 {
		t.Error("no publish waited for the sessions to be taken over")
	}
}

// TestClusterDuplicateNodeID: a second node with a running node's node ID
// refuses to start and says why.
func TestClusterDuplicateNodeID(t *testing.T) {
	nodes := startCluster(t, 1)
	cfg := nodes[0].Config
	cfg.MQTTAddr, cfg.APIAddr, cfg.JobsAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Registry = nil
	_, err := broker.New(cfg)
	if err == nil || !strings.Contains(err.Error(), "node-0") || !strings.Contains(err.Error(), "node ID") {
		t.Fatalf("second node-0: %v", err)
	}
}

// TestClusterHintsOnNATS: with NATS, a job created through node B's API
// reaches a device on node A as a notify-next, the change hint having
// travelled on NATS; no commit sent PostgreSQL's NOTIFY (a listener on the
// store's channel hears only the test's own marker).
func TestClusterHintsOnNATS(t *testing.T) {
	dbURL := brokertest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	channel := "jobsbroker." + u.Query().Get("search_path")
	ctx := context.Background()
	listener, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	nodes := startClusterOn(t, dbURL, 2)
	dev := brokertest.Connect3(t, nodes[0].MQTTAddr(), "pump")
	dev.Subscribe("$aws/things/pump/jobs/notify-next", 1)
	if _, err := nodes[1].IoT().CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("j1"),
		Targets: []string{brokertest.ThingARN("pump")}, Document: aws.String(`{"op":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if m := dev.Expect("$aws/things/pump/jobs/notify-next"); !strings.Contains(string(m.Payload), `"jobId":"j1"`) {
		t.Fatalf("notify-next %s", m.Payload)
	}
	if got := value(t, scrape(t, nodes[0]), "jobsbroker_cluster_hints_total", "direction=received"); got == 0 {
		t.Fatal("node A received no hint on NATS")
	}
	if _, err := listener.Exec(ctx, "SELECT pg_notify($1, 'marker')", channel); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Payload != "marker" {
		t.Fatalf("a node sent NOTIFY %q", n.Payload)
	}
}

// syncBuffer is a log destination tests read while the broker writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// elsewhere returns the URL of a fresh test database schema with its host
// moved to an address nothing listens on yet, and the real host.
func elsewhere(t *testing.T) (*url.URL, string) {
	t.Helper()
	u, err := url.Parse(brokertest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	realDB := u.Host
	u.Host = freeAddr(t)
	return u, realDB
}

// proxy forwards connections on addr to target until the test ends or
// the returned function cuts them all and stops listening.
func proxy(t *testing.T, addr, target string) (cut func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	cut = func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}
	t.Cleanup(cut)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				mu.Lock()
				conns = append(conns, c, up)
				mu.Unlock()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return cut
}

// TestCommitErrorsCountPostgresFailures: with PostgreSQL unreachable, a
// control-plane call fails and jobsbroker_store_commit_errors_total counts
// it, and the node turns unready.
func TestCommitErrorsCountPostgresFailures(t *testing.T) {
	u, realDB := elsewhere(t)
	cut := proxy(t, u.Host, realDB)
	b := brokertest.Start(t, func(c *broker.Config) { c.Store, c.StoreURL, c.NodeID = broker.StorePostgres, u.String(), "cut" })
	if got := value(t, scrape(t, b), "jobsbroker_store_commit_errors_total"); got != 0 {
		t.Fatalf("commit errors before the cut: %v", got)
	}
	cut()
	_, err := b.IoT().CreateJob(context.Background(), &iot.CreateJobInput{JobId: aws.String("j"),
		Targets: []string{brokertest.ThingARN("x")}, Document: aws.String(`{}`)})
	if err == nil {
		t.Fatal("CreateJob succeeded without the database")
	}
	if got := value(t, scrape(t, b), "jobsbroker_store_commit_errors_total"); got == 0 {
		t.Fatal("jobsbroker_store_commit_errors_total did not count the failure")
	}
	if b.Health().Ready {
		t.Fatal("ready without the database")
	}
}

// TestStartRetries: a node started before PostgreSQL and NATS are up
// retries both, with backoff, and starts once they are; the start log
// names the store, the node and the cluster.
func TestStartRetries(t *testing.T) {
	u, realDB := elsewhere(t)
	natsAddr := freeAddr(t)
	logs := &syncBuffer{}
	cfg := broker.Config{MQTTAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", JobsAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Store: broker.StorePostgres, StoreURL: u.String(), NodeID: "late", ClusterNATSURL: "nats://" + natsAddr,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	started := make(chan error, 1)
	var b *broker.Broker
	go func() {
		var err error
		if b, err = broker.New(cfg); err == nil {
			err = b.Start()
		}
		started <- err
	}()
	waitLog := func(what string) {
		brokertest.Eventually(t, "the log says "+what, func() error {
			if !strings.Contains(logs.String(), what) {
				return fmt.Errorf("not yet:\n%s", logs.String())
			}
			return nil
		})
	}
	waitLog("to=PostgreSQL attempt=2")
	_ = proxy(t, u.Host, realDB)
	waitLog("to=NATS attempt=2")
	host, port, _ := net.SplitHostPort(natsAddr)
	portNum, _ := strconv.Atoi(port)
	ns, err := natsserver.NewServer(&natsserver.Options{Host: host, Port: portNum, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the node did not start:\n%s", logs.String())
	}
	t.Cleanup(func() { b.Shutdown(context.Background()) })
	waitLog("store=postgres node=late cluster=nats://" + natsAddr)
}

// TestDuplicateNodeIDWithoutNATS: on PostgreSQL alone, a second node with
// a running node's node ID refuses to start, at once.
func TestDuplicateNodeIDWithoutNATS(t *testing.T) {
	url := brokertest.PostgresURL(t)
	brokertest.Start(t, func(c *broker.Config) { c.Store, c.StoreURL, c.NodeID = broker.StorePostgres, url, "twin" })
	_, err := broker.New(broker.Config{MQTTAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", JobsAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), Store: broker.StorePostgres, StoreURL: url, NodeID: "twin"})
	if !errors.Is(err, store.ErrDuplicateNode) || !strings.Contains(err.Error(), `"twin"`) {
		t.Fatalf("second twin: %v", err)
	}
}

// TestClusterNATSDown: while NATS is down, a node stays ready, passes QoS
// 0 publishes between its own clients, and refuses QoS 1 publishes it
// cannot pass on (MQTT 5: PUBACK 0x80; MQTT 3.1.1: the connection is
// closed); once NATS is back, publishes cross nodes again.
func TestClusterNATSDown(t *testing.T) {
	url := brokertest.PostgresURL(t)
	ns := brokertest.NATS(t)
	addr := ns.Addr().(*net.TCPAddr)
	nodes := make([]*brokertest.Instance, 2)
	for i := range nodes {
		nodes[i] = brokertest.Start(t, func(c *broker.Config) {
			c.Store, c.StoreURL, c.NodeID, c.ClusterNATSURL = broker.StorePostgres, url, fmt.Sprintf("node-%d", i), ns.ClientURL()
		})
	}
	sub := brokertest.Connect3(t, nodes[1].MQTTAddr(), "sub")
	sub.Subscribe("down/#", 1)
	ns.Shutdown()
	brokertest.Eventually(t, "node 0 sees NATS gone", func() error {
		if v := value(t, scrape(t, nodes[0]), "jobsbroker_cluster_connected"); v != 0 {
			return fmt.Errorf("connected %v", v)
		}
		return nil
	})
	if h := nodes[0].Health(); !h.Ready || h.Checks["cluster"] == "ok" {
		t.Fatalf("health without NATS: %+v", h)
	}
	v5 := brokertest.DialRaw(t, nodes[0].MQTTAddr(), brokertest.RawOptions{ID: "v5", Version: 5, Clean: true})
	if code := v5.Publish("down/a", []byte("x"), 1, false); code != packets.ErrUnspecifiedError.Code {
		t.Fatalf("MQTT 5 QoS 1 publish without NATS: PUBACK %#x, want 0x80", code)
	}
	v4 := brokertest.DialRaw(t, nodes[0].MQTTAddr(), brokertest.RawOptions{ID: "v4", Clean: true})
	if _, err := v4.TryPublish("down/b", []byte("x"), 1, false); err == nil {
		t.Fatal("MQTT 3.1.1 QoS 1 publish without NATS was acknowledged")
	}
	// Local traffic goes on at QoS 0: node 1's own publisher reaches its
	// subscriber.
	brokertest.Connect3(t, nodes[1].MQTTAddr(), "local").Publish("down/local", "here", 0)
	sub.Expect("down/local")

	back, err := natsserver.NewServer(&natsserver.Options{Host: addr.IP.String(), Port: addr.Port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go back.Start()
	t.Cleanup(back.Shutdown)
	for _, n := range nodes {
		brokertest.Eventually(t, "the nodes reconnect", func() error {
			if v := value(t, scrape(t, n), "jobsbroker_cluster_connected"); v != 1 {
				return fmt.Errorf("connected %v", v)
			}
			return nil
		})
	}
	brokertest.Connect3(t, nodes[0].MQTTAddr(), "again").Publish("down/again", "crossed", 1)
	if m := sub.Expect("down/again"); string(m.Payload) != "crossed" {
		t.Fatalf("got %q", m.Payload)
	}
}

// TestClusterDuplicateNodeIDOnNATS: two nodes with one node ID on one NATS
// (here on different databases, so that the database's own check passes)
// do not both run: the second is refused by the first's answer on NATS.
func TestClusterDuplicateNodeIDOnNATS(t *testing.T) {
	nats := brokertest.NATS(t).ClientURL()
	cfg := func(url string) broker.Config {
		return broker.Config{MQTTAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", JobsAddr: "127.0.0.1:0", DataDir: t.TempDir(),
			Store: broker.StorePostgres, StoreURL: url, NodeID: "twin", ClusterNATSURL: nats}
	}
	first := cfg(brokertest.PostgresURL(t))
	brokertest.StartWith(t, first, nil)
	_, err := broker.New(cfg(brokertest.PostgresURL(t)))
	if !errors.Is(err, cluster.ErrDuplicateNode) || !strings.Contains(err.Error(), `"twin"`) {
		t.Fatalf("second twin: %v", err)
	}
}
