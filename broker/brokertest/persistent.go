package brokertest

import (
	"context"
	"net"
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
	c := newClient(t, id, version)
	if version == 5 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.v5 = paho.NewClient(paho.ClientConfig{
			Conn:     conn,
			ClientID: id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				c.record(Message{Topic: pr.Packet.Topic, Payload: pr.Packet.Payload, QoS: pr.Packet.QoS})
				return true, nil
			}},
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		expiry := uint32(3600)
		ack, err := c.v5.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: false,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
		if err != nil || ack.ReasonCode != 0 {
			t.Fatalf("connect %s: %v %+v", id, err, ack)
		}
		t.Cleanup(c.Close)
		return c, ack.SessionPresent
	}
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
