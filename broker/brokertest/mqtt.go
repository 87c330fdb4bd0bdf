package brokertest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
)

// Message is a publish a test client received.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
}

// JSON decodes the payload into a map.
func (m Message) JSON(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		t.Fatalf("payload on %s is not a JSON object: %v: %s", m.Topic, err, m.Payload)
	}
	return v
}

// Client is a real MQTT client (paho) connected to a test broker, which
// records every message it receives in order.
type Client struct {
	t       testing.TB
	ID      string
	Version int // 4 (MQTT 3.1.1) or 5
	v3      paho3.Client
	v5      *paho.Client

	mu   sync.Mutex
	cond *sync.Cond
	msgs []Message
}

// Connect3 connects an MQTT 3.1.1 client (paho.mqtt.golang).
func Connect3(t testing.TB, addr, id string) *Client {
	t.Helper()
	c, _ := connect3(t, addr, id, true)
	return c
}

// connect3 connects a paho.mqtt.golang client with clean session on or
// off (it does not subscribe again when its session is present) and
// returns it with the CONNACK's session present flag.
func connect3(t testing.TB, addr, id string, clean bool) (*Client, bool) {
	t.Helper()
	c := newClient(t, id, 4)
	opts := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetProtocolVersion(4).SetCleanSession(clean).SetAutoReconnect(false).SetResumeSubs(false).
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

// Connect5 connects an MQTT 5 client (paho.golang).
func Connect5(t testing.TB, addr, id string) *Client {
	t.Helper()
	c, _ := connect5(t, addr, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true})
	return c
}

// connect5 connects a paho.golang client with cp and returns its CONNACK.
func connect5(t testing.TB, addr string, cp *paho.Connect) (*Client, *paho.Connack) {
	t.Helper()
	id := cp.ClientID
	c := newClient(t, id, 5)
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
	ack, err := c.v5.Connect(ctx, cp)
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %+v", id, err, ack)
	}
	t.Cleanup(c.Close)
	return c, ack
}

// Connect connects with MQTT version 4 (3.1.1) or 5.
func Connect(t testing.TB, addr, id string, version int) *Client {
	if version == 5 {
		return Connect5(t, addr, id)
	}
	return Connect3(t, addr, id)
}

func newClient(t testing.TB, id string, version int) *Client {
	c := &Client{t: t, ID: id, Version: version}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *Client) record(m Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	c.cond.Broadcast()
}

// Close disconnects.
func (c *Client) Close() {
	if c.v3 != nil && c.v3.IsConnected() {
		c.v3.Disconnect(100)
	}
	if c.v5 != nil {
		c.v5.Disconnect(&paho.Disconnect{ReasonCode: 0})
	}
}

// Subscribe subscribes to filter at qos and waits for the SUBACK.
func (c *Client) Subscribe(filter string, qos byte) {
	c.t.Helper()
	if c.v3 != nil {
		tok := c.v3.Subscribe(filter, qos, nil)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			c.t.Fatalf("subscribe %s: %v", filter, tok.Error())
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.v5.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}}); err != nil {
		c.t.Fatalf("subscribe %s: %v", filter, err)
	}
}

// Unsubscribe removes a subscription.
func (c *Client) Unsubscribe(filter string) {
	c.t.Helper()
	if c.v3 != nil {
		tok := c.v3.Unsubscribe(filter)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			c.t.Fatalf("unsubscribe %s: %v", filter, tok.Error())
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.v5.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{filter}}); err != nil {
		c.t.Fatalf("unsubscribe %s: %v", filter, err)
	}
}

// Publish sends payload (a string, []byte, or a value encoded as JSON) and
// waits for the broker's acknowledgement at QoS 1.
func (c *Client) Publish(topic string, payload any, qos byte) {
	c.t.Helper()
	var body []byte
	switch p := payload.(type) {
	case string:
		body = []byte(p)
	case []byte:
		body = p
	default:
		var err error
		if body, err = json.Marshal(p); err != nil {
			c.t.Fatalf("encode payload: %v", err)
		}
	}
	if c.v3 != nil {
		tok := c.v3.Publish(topic, qos, false, body)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			c.t.Fatalf("publish %s: %v", topic, tok.Error())
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.v5.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: body}); err != nil {
		c.t.Fatalf("publish %s: %v", topic, err)
	}
}

// Expect waits for the first message on topic that has not been taken
// yet, and takes it.
func (c *Client) Expect(topic string) Message {
	c.t.Helper()
	m, ok := c.wait(10*time.Second, func(m Message) bool { return m.Topic == topic })
	if !ok {
		c.t.Fatalf("%s: no message on %s within 10s; received %s", c.ID, topic, c.describe())
	}
	return m
}

// ExpectContaining waits for the first message on topic, not taken yet,
// whose payload contains substr, and takes it: the way to wait for one
// particular notification when earlier ones may still be on their way.
func (c *Client) ExpectContaining(topic, substr string) Message {
	c.t.Helper()
	m, ok := c.wait(10*time.Second, func(m Message) bool {
		return m.Topic == topic && strings.Contains(string(m.Payload), substr)
	})
	if !ok {
		c.t.Fatalf("%s: no message on %s containing %q within 10s; received %s", c.ID, topic, substr, c.describe())
	}
	return m
}

// Request publishes payload on topic at QoS 1 and returns the reply on
// topic/accepted or topic/rejected.
func (c *Client) Request(topic string, payload any) (reply Message, accepted bool) {
	c.t.Helper()
	c.Publish(topic, payload, 1)
	m, ok := c.wait(10*time.Second, func(m Message) bool {
		return m.Topic == topic+"/accepted" || m.Topic == topic+"/rejected"
	})
	if !ok {
		c.t.Fatalf("%s: no reply to %s within 10s; received %s", c.ID, topic, c.describe())
	}
	return m, strings.HasSuffix(m.Topic, "/accepted")
}

// MustAccept runs Request and fails unless it was accepted.
func (c *Client) MustAccept(topic string, payload any) map[string]any {
	c.t.Helper()
	m, ok := c.Request(topic, payload)
	if !ok {
		c.t.Fatalf("%s rejected: %s", topic, m.Payload)
	}
	return m.JSON(c.t)
}

// MustReject runs Request and fails unless it was rejected.
func (c *Client) MustReject(topic string, payload any) map[string]any {
	c.t.Helper()
	m, ok := c.Request(topic, payload)
	if ok {
		c.t.Fatalf("%s accepted, want rejected: %s", topic, m.Payload)
	}
	return m.JSON(c.t)
}

// Wait waits up to d for the first message on topic not taken yet, and
// takes it; ok is false when none came.
func (c *Client) Wait(d time.Duration, topic string) (m Message, ok bool) {
	return c.wait(d, func(m Message) bool { return m.Topic == topic })
}

func (c *Client) wait(d time.Duration, match func(Message) bool) (Message, bool) {
	deadline := time.Now().Add(d)
	timer := time.AfterFunc(d, c.cond.Broadcast)
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for i, m := range c.msgs {
			if match(m) {
				c.msgs = append(c.msgs[:i], c.msgs[i+1:]...)
				return m, true
			}
		}
		if time.Now().After(deadline) {
			return Message{}, false
		}
		c.cond.Wait()
	}
}

// Messages returns and forgets everything received so far, in order.
func (c *Client) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.msgs
	c.msgs = nil
	return out
}

// Received returns everything received so far without taking it.
func (c *Client) Received() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

func (c *Client) describe() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d messages", len(c.msgs))
	for _, m := range c.msgs {
		fmt.Fprintf(&b, "\n  %s %s", m.Topic, m.Payload)
	}
	return b.String()
}

// Dial describes a connection for TryConnect.
type Dial struct {
	// URL is the broker: tcp://, ssl:// (TLS), ws:// or wss:// (WebSocket,
	// path /mqtt).
	URL string
	// ID is the client ID.
	ID string
	// TLS configures ssl:// and wss://.
	TLS *tls.Config
	// Username and Password are sent when Username is set.
	Username, Password string
}

// TryConnect connects an MQTT 3.1.1 client as d describes and returns the
// connection error instead of failing the test, for tests of refusals.
func TryConnect(t testing.TB, d Dial) (*Client, error) {
	t.Helper()
	c := newClient(t, d.ID, 4)
	opts := paho3.NewClientOptions().AddBroker(d.URL).SetClientID(d.ID).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).
		SetOrderMatters(true).SetConnectTimeout(5 * time.Second).SetConnectRetry(false).
		SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
			c.record(Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos()})
		})
	if d.TLS != nil {
		opts.SetTLSConfig(d.TLS)
	}
	if d.Username != "" {
		opts.SetUsername(d.Username).SetPassword(d.Password)
	}
	c.v3 = paho3.NewClient(opts)
	tok := c.v3.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect %s: timed out", d.ID)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(c.Close)
	return c, nil
}

// TrySubscribe subscribes and returns the broker's refusal as an error.
func (c *Client) TrySubscribe(filter string, qos byte) error {
	tok := c.v3.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("subscribe %s: timed out", filter)
	}
	if err := tok.Error(); err != nil {
		return err
	}
	st, ok := tok.(*paho3.SubscribeToken)
	if !ok {
		return fmt.Errorf("subscribe %s: no SUBACK result", filter)
	}
	for f, code := range st.Result() {
		if code >= 0x80 {
			return fmt.Errorf("subscribe %s: refused by the broker (%#x for %s)", filter, code, f)
		}
	}
	return nil
}

// TryPublish publishes at QoS 0 or 1 (MQTT 3.1.1 clients) and returns
// the error instead of failing the test.
func (c *Client) TryPublish(topic, payload string, qos byte) error {
	tok := c.v3.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("publish %s: timed out", topic)
	}
	return tok.Error()
}

// Connected reports whether the client is still connected.
func (c *Client) Connected() bool {
	if c.v3 != nil {
		return c.v3.IsConnectionOpen()
	}
	return true
}
