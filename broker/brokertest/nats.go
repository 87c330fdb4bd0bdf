package brokertest

import (
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATS runs a NATS server in the test process, on a free port of
// 127.0.0.1, and returns it; it shuts down when the test ends. Nodes of a
// cluster (Config.ClusterNATSURL) take its ClientURL.
func NATS(t testing.TB) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("NATS server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("NATS server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s
}
