package broker

import (
	"bytes"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/jobshook"
)

// echoHook answers every publish under a topic prefix with the same
// payload on topic + "/reply", written to the publisher alone, and
// consumes the request: the request/reply path of the jobs hook with no
// store and no JSON. jobsbench measures the broker's own ceiling with it
// (-debug-echo-prefix); it is off unless configured.
type echoHook struct {
	mqtt.HookBase
	prefix string
	jobs   *jobshook.Hook
}

func (h *echoHook) ID() string { return "bench-echo" }

func (h *echoHook) Provides(b byte) bool { return bytes.Contains([]byte{mqtt.OnPublish}, []byte{b}) }

func (h *echoHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !strings.HasPrefix(pk.TopicName, h.prefix) || strings.HasSuffix(pk.TopicName, "/reply") {
		return pk, nil
	}
	h.jobs.Answer(cl, pk, pk.TopicName+"/reply", pk.Payload)
	return pk, packets.CodeSuccessIgnore
}
