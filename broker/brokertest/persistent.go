package brokertest

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
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
	c := newClient(t, id, version)
	opts := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetProtocolVersion(4).SetCleanSession(false).SetAutoReconnect(false).SetResumeSubs(false).
		SetOrderMatters(true).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
			c.record(Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos()})
		})
	c.v3 = paho3.NewClient(opts)
	tok := c.v3.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(c.Close)
	return c, tok.(*paho3.ConnectToken).SessionPresent()
}
