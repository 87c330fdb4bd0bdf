package traffic

import (
	"bytes"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Sink receives the messages a Hook records: a Recorder, Transcripts.
type Sink interface {
	Record(thing string, dir Direction, clientID, topic string, payload []byte)
}

// Hook is the mochi hook that feeds a Recorder (and any other Sink):
// every publish a client makes on a thing's jobs topics, and every publish
// the broker sends on them. Add it before the jobs hook, which consumes
// the requests it serves (mochi stops asking further hooks once one has).
type Hook struct {
	mqtt.HookBase
	sinks []Sink
}

// NewHook returns a hook recording into rec and the other sinks, in
// order.
func NewHook(rec *Recorder, more ...Sink) *Hook {
	return &Hook{sinks: append([]Sink{rec}, more...)}
}

func (h *Hook) record(thing string, dir Direction, clientID, topic string, payload []byte) {
	for _, s := range h.sinks {
		s.Record(thing, dir, clientID, topic, payload)
	}
}

// ID returns the hook's identifier.
func (h *Hook) ID() string { return "jobs-traffic" }

// Provides says the hook handles OnPublish and OnPacketSent.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublish, mqtt.OnPacketSent}, []byte{b})
}

// OnPublish records a client's publish on a jobs topic and lets it through
// unchanged.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the broker's own notifications are recorded as they are sent
	}
	if thing, ok := JobsThing(pk.TopicName); ok {
		h.record(thing, In, cl.ID, pk.TopicName, pk.Payload)
	}
	return pk, nil
}

// OnPacketSent records a publish sent to a client on a jobs topic.
func (h *Hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Publish {
		return
	}
	if thing, ok := JobsThing(pk.TopicName); ok {
		h.record(thing, Out, cl.ID, pk.TopicName, pk.Payload)
	}
}
