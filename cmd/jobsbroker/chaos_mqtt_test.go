package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
)

// chaosConn is a real MQTT 3.1.1 connection (paho) for tests in which the
// broker may die at any moment: unlike brokertest's clients it never calls
// t.Fatal, and it reports a lost connection instead of waiting forever.
// Replies are delivered to the requester without a subscription, as the
// broker does for every Jobs request.
type chaosConn struct {
	c       paho3.Client
	replies chan paho3.Message
	lost    chan struct{} // closed when the connection drops
	closed  chan struct{} // closed by close
	once    sync.Once
	lostMu  sync.Once
}

// errConnLost means the connection dropped before the reply came.
var errConnLost = errors.New("connection lost")

// chaosDial connects with client id id.
func chaosDial(addr, id string, timeout time.Duration) (*chaosConn, error) {
	cc := &chaosConn{replies: make(chan paho3.Message, 64), lost: make(chan struct{}), closed: make(chan struct{})}
	opts := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(timeout).
		SetKeepAlive(30 * time.Second).SetWriteTimeout(timeout).
		SetConnectionLostHandler(func(paho3.Client, error) { cc.lostMu.Do(func() { close(cc.lost) }) }).
		SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
			select {
			case cc.replies <- m:
			case <-cc.closed:
			}
		})
	cc.c = paho3.NewClient(opts)
	tok := cc.c.Connect()
	if !tok.WaitTimeout(timeout) {
		cc.close()
		return nil, fmt.Errorf("connect to %s: timed out", addr)
	}
	if err := tok.Error(); err != nil {
		cc.close()
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return cc, nil
}

// close disconnects (if still connected) and stops delivery.
func (cc *chaosConn) close() {
	cc.once.Do(func() {
		close(cc.closed)
		if cc.c.IsConnectionOpen() {
			cc.c.Disconnect(0)
		}
	})
}

// publish sends body as JSON at QoS 1 without waiting for the PUBACK: a
// request whose connection dies is noticed by await.
func (cc *chaosConn) publish(topic string, body any) {
	payload, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	cc.c.Publish(topic, 1, false, payload)
}

// chaosReply is a decoded reply to a Jobs request.
type chaosReply struct {
	Topic    string
	Accepted bool
	Body     map[string]any
	Raw      string
}

// await waits for the reply to a request on topic whose clientToken
// starts with tokenPrefix; replies to other requests are dropped.
func (cc *chaosConn) await(ctx context.Context, topic, tokenPrefix string, timeout time.Duration) (chaosReply, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case m := <-cc.replies:
			if m.Topic() != topic+"/accepted" && m.Topic() != topic+"/rejected" {
				continue
			}
			var body map[string]any
			if err := json.Unmarshal(m.Payload(), &body); err != nil {
				return chaosReply{}, fmt.Errorf("reply on %s is not JSON: %v: %s", m.Topic(), err, m.Payload())
			}
			tok, _ := body["clientToken"].(string)
			if !strings.HasPrefix(tok, tokenPrefix) {
				continue
			}
			return chaosReply{Topic: m.Topic(), Accepted: strings.HasSuffix(m.Topic(), "/accepted"), Body: body, Raw: string(m.Payload())}, nil
		case <-cc.lost:
			return chaosReply{}, errConnLost
		case <-ctx.Done():
			return chaosReply{}, ctx.Err()
		case <-timer.C:
			return chaosReply{}, fmt.Errorf("no reply on %s within %v", topic, timeout)
		}
	}
}

// request publishes body (with clientToken token) and waits for its reply.
func (cc *chaosConn) request(ctx context.Context, topic, token string, body map[string]any, timeout time.Duration) (chaosReply, error) {
	body["clientToken"] = token
	cc.publish(topic, body)
	return cc.await(ctx, topic, token, timeout)
}

// chaosState is a JobExecutionState (or the fields of a JobExecution that
// the tests compare) read from a decoded reply.
type chaosState struct {
	Status          string
	Version         int64
	ExecutionNumber int64
	Details         map[string]string
}

func stateFrom(v any) (chaosState, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return chaosState{}, false
	}
	s := chaosState{Details: map[string]string{}}
	s.Status, _ = m["status"].(string)
	if f, ok := m["versionNumber"].(float64); ok {
		s.Version = int64(f)
	}
	if f, ok := m["executionNumber"].(float64); ok {
		s.ExecutionNumber = int64(f)
	}
	if d, ok := m["statusDetails"].(map[string]any); ok {
		for k, v := range d {
			s.Details[k], _ = v.(string)
		}
	}
	return s, s.Status != ""
}

func sameDetails(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// httpJSON sends a request with a JSON body (nil for none) and decodes the
// JSON answer; it returns the status, the x-amzn-ErrorType header and the
// body.
func httpJSON(client *http.Client, method, url string, body any) (int, string, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", nil, err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", nil, err
	}
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), nil, fmt.Errorf("answer is not JSON: %v: %s", err, raw)
		}
	}
	return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), out, nil
}
