package brokertest

import (
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

// ConnectPersistent connects a paho client with a persistent session:
// clean session off (MQTT 3.1.1, version 4) or clean start off with a
// one-hour session expiry interval (MQTT 5). It returns the client and
// the CONNACK's session present flag. A client with a session does not
// subscribe again when it comes back: it gets what it is sent.
func ConnectPersistent(t testing.TB, addr, id string, version int) (*Client, bool) {
	t.Helper()
	if version == 5 {
		expiry := uint32(3600)
		c, ack := connect5(t, addr, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: false,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
		return c, ack.SessionPresent
	}
	return connect3(t, addr, id, false)
}
