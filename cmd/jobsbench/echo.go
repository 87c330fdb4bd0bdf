package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/mochi-mqtt/server/v2/packets"
)

// runEcho runs the echo baselines alone (the echo scenario).
func runEcho(ctx context.Context, cfg *config, rep *Report) error {
	t, err := openTarget(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeTarget(t, rep)
	return runEchoes(ctx, cfg, t, rep)
}

// runEchoes measures the request/reply pattern of steady with no jobs
// work: through jobsbroker's -debug-echo-prefix responder (the broker's
// own ceiling), then through Mosquitto with one responder client.
func runEchoes(ctx context.Context, cfg *config, t *target, rep *Report) error {
	if t.External {
		rep.note("echo through the running broker needs it started with -debug-echo-prefix %s", echoPrefix)
	}
	if cfg.CompareSessions {
		clean, persistent, err := compareSessions(ctx, cfg, newProber(t.pids(), nil), func(c *config) (*loopSetup, error) {
			return echoSetup(ctx, c, t.mqttAddrs(), false)
		})
		if err != nil {
			return err
		}
		for _, r := range []*LoopResult{clean, persistent} {
			r.Broker, r.RSSMiB = "jobsbroker", mib(t.RSS())
			rep.Echo = append(rep.Echo, r)
		}
		rep.ratios().EchoPersistentOverClean = ratio(persistent, clean)
	} else {
		res, err := echoLoop(ctx, cfg, t.mqttAddrs(), false, newProber(t.pids(), nil))
		if err != nil {
			return err
		}
		res.Broker = "jobsbroker"
		res.RSSMiB = mib(t.RSS())
		rep.Echo = append(rep.Echo, res)
	}
	if err := routedEchoes(ctx, cfg, t, rep); err != nil {
		return err
	}
	if cfg.Mosquitto == "" {
		rep.note("mosquitto echo skipped (-mosquitto is empty)")
		return nil
	}
	if _, err := os.Stat(cfg.Mosquitto); err != nil {
		rep.note("mosquitto echo skipped: %s not found (Debian: apt-get install mosquitto)", cfg.Mosquitto)
		return nil
	}
	mq, stop, err := startMosquitto(ctx, cfg.Mosquitto)
	if err != nil {
		return err
	}
	defer stop()
	responder, err := dialResponder(ctx, cfg, mq.MQTTAddr, echoPrefix)
	if err != nil {
		return fmt.Errorf("mosquitto echo responder: %w", err)
	}
	defer responder.Close()
	mcfg := *cfg
	mcfg.Persistent = false
	res, err := echoLoop(ctx, &mcfg, mq.mqttAddrs(), true, newProber(mq.pids(), nil))
	if err != nil {
		return err
	}
	res.Broker = "mosquitto"
	res.RSSMiB = mib(mq.RSS())
	if err := responder.Err(); err != nil {
		return fmt.Errorf("mosquitto echo responder: %w", err)
	}
	rep.Echo = append(rep.Echo, res)
	return nil
}

// echoLoop connects cfg.Devices devices to addr and runs the echo loop;
// subscribe makes each subscribe to its reply topic first (a plain broker
// routes replies only by subscription).
func echoLoop(ctx context.Context, cfg *config, addrs []string, subscribe bool, probe *prober) (*LoopResult, error) {
	ls, err := echoSetup(ctx, cfg, addrs, subscribe)
	if err != nil {
		return nil, err
	}
	defer ls.close()
	res, err := runLoop(ctx, ls.name, ls.clients, ls.protos, cfg.loopOptions(probe))
	if err == nil {
		res.Persistent = cfg.Persistent
	}
	return res, err
}

// echoSetup connects the echo devices.
func echoSetup(ctx context.Context, cfg *config, addrs []string, subscribe bool) (*loopSetup, error) {
	label := "echo jobsbroker"
	switch {
	case subscribe:
		label = "echo mosquitto"
	case cfg.Persistent:
		label = "echo jobsbroker persistent"
	}
	return echoSetupOn(ctx, cfg, addrs, subscribe, echoPrefix, label)
}

// echoSetupOn connects the echo devices to addrs, publishing under
// prefix; subscribe makes each subscribe to its reply topic first.
func echoSetupOn(ctx context.Context, cfg *config, addrs []string, subscribe bool, prefix, label string) (*loopSetup, error) {
	ids := names("echo-"+runID(), cfg.Devices)
	var setup func(i int, c *Client) error
	if subscribe {
		setup = func(i int, c *Client) error {
			return c.Subscribe(ctx, prefix+ids[i]+"/reply", 1)
		}
	}
	clients, err := connectDevices(ctx, cfg, addrs, label+" connect", ids, setup)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	protos := make([]deviceProto, len(clients))
	for i := range clients {
		protos[i] = newEchoProto(prefix, ids[i])
	}
	return newLoopSetup(ctx, cfg, label, clients, protos), nil
}

// echoProto publishes a ~100-byte JSON request on bench/{device} and
// expects the same bytes back on bench/{device}/reply.
type echoProto struct {
	topic, replyTopic string
	device            string
	seq               uint64
	buf               []byte
}

func newEchoProto(prefix, device string) *echoProto {
	return &echoProto{topic: prefix + device, replyTopic: prefix + device + "/reply", device: device,
		buf: make([]byte, 0, 128)}
}

func (p *echoProto) request() (string, []byte) {
	p.seq++
	b := append(p.buf[:0], `{"device":"`...)
	b = append(b, p.device...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, p.seq, 10)
	b = append(b, `,"status":"IN_PROGRESS","statusDetails":{"progress":"50"}}`...)
	p.buf = b
	return p.topic, p.buf
}

func (p *echoProto) reply(m *packets.Packet) outcome {
	if m.TopicName != p.replyTopic {
		return outIgnore
	}
	if !bytes.Equal(m.Payload, p.buf) {
		return outInvalid
	}
	return outAccepted
}

// dialResponder connects the client that answers every request under
// prefix with its payload on topic/reply.
func dialResponder(ctx context.Context, cfg *config, addr, prefix string) (*Client, error) {
	responder, err := Dial(ctx, addr, ClientOptions{ClientID: "jobsbench-responder-" + runID(), KeepAlive: cfg.KeepAlive,
		OnMessage: func(c *Client, m *packets.Packet) {
			// prefix+ matches requests only: replies are one level deeper.
			reply := make([]byte, 0, len(m.TopicName)+6)
			reply = append(append(reply, m.TopicName...), "/reply"...)
			c.Publish(string(reply), m.Payload, 1)
		}})
	if err != nil {
		return nil, err
	}
	if err := responder.Subscribe(ctx, prefix+"+", 1); err != nil {
		responder.Close()
		return nil, err
	}
	return responder, nil
}

// routedPrefix is the topic prefix of the routed echoes: not the broker's
// echo responder's, so that requests travel as any publish does.
const routedPrefix = "routed/"

// routedEchoes measures, on nodes that are one broker over NATS (-nats or
// -cluster-nats-url), the echo through a responder client: with the
// responder on the devices' node, then on another node (every request
// and every reply crosses NATS), and the ratio of the two.
func routedEchoes(ctx context.Context, cfg *config, t *target, rep *Report) error {
	nodes := t.all()
	if !t.clustered || len(nodes) < 2 {
		return nil
	}
	ecfg := *cfg
	ecfg.Persistent = false
	var results [2]*LoopResult
	for i, run := range []struct {
		label     string
		responder string
	}{{"echo routed, one node", nodes[0].MQTTAddr}, {"echo routed, across nodes", nodes[len(nodes)-1].MQTTAddr}} {
		responder, err := dialResponder(ctx, cfg, run.responder, routedPrefix)
		if err != nil {
			return fmt.Errorf("%s: responder: %w", run.label, err)
		}
		ls, err := echoSetupOn(ctx, &ecfg, []string{nodes[0].MQTTAddr}, true, routedPrefix, run.label)
		if err != nil {
			responder.Close()
			return err
		}
		res, err := runLoop(ctx, ls.name, ls.clients, ls.protos, ecfg.loopOptions(t.prober()))
		ls.close()
		responder.Close()
		if err != nil {
			return err
		}
		res.Broker, res.RSSMiB = "jobsbroker routed", mib(t.RSS())
		rep.Echo = append(rep.Echo, res)
		results[i] = res
	}
	rep.ratios().EchoAcrossNodesOverOneNode = ratio(results[1], results[0])
	return nil
}
