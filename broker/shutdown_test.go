package broker_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// connectOnce connects to addr as an MQTT 3.1.1 clean-session client,
// waits for the CONNACK and hangs up: the broker adds the client to its
// table and removes it again.
func connectOnce(addr, id string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = connectRaw(conn, id, "", "")
	return err
}

// TestShutdownWhileClientsComeAndGo stops brokers while clients connect
// and disconnect as fast as they can, and requires every shutdown to
// finish within its timeout. Two mochi faults bite here unless the
// listeners work around them (see mqttlisten: closeListener and connSet): its way of
// closing a listener's clients read-locks the client table twice in a row
// and deadlocks when a connect or disconnect queues for the write lock in
// between (mochi-mqtt/server#488); and a connection accepted just before
// the listener closed adds to the WaitGroup that Close is waiting on. The
// second one the race detector reports almost every run; the first has a
// window of nanoseconds, and this test only sometimes hits it.
func TestShutdownWhileClientsComeAndGo(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		b := brokertest.Start(t)
		addr := b.MQTTAddr()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		connected := make(chan struct{}, 1)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if connectOnce(addr, fmt.Sprintf("churn-%d-%d", w, i)) == nil {
						select {
						case connected <- struct{}{}:
						default:
						}
					}
				}
			}()
		}
		// Shut down once the churn is under way.
		select {
		case <-connected:
		case <-time.After(10 * time.Second):
			t.Fatal("no client could connect")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := b.Shutdown(ctx)
		cancel()
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: shutdown: %v", round, err)
		}
		b.Broker = nil // shut down already: the cleanup has nothing to do
	}
}
