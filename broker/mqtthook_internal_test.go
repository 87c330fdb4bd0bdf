package broker

import (
	"log/slog"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker/logsample"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkProtocolHookPerPacket is what the protocol hook adds to a
// request's packets in the common case: a QoS 1 PUBLISH read (its id not
// in flight) and the PUBLISH of the reply and the PUBACK written.
func BenchmarkProtocolHookPerPacket(b *testing.B) {
	h := &protocolHook{maxSubs: DefaultMaxSubscriptions, log: slog.New(slog.DiscardHandler), refusedLog: logsample.New()}
	cl := mqtt.New(nil).NewClient(nil, "bench", "bench", false)
	cl.Properties.ProtocolVersion = 4
	req := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 7, TopicName: "$aws/things/t/jobs/get"}
	reply := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 8}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 7}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = h.OnPacketRead(cl, req)
		_ = h.OnPacketEncode(cl, reply)
		_ = h.OnPacketEncode(cl, ack)
	}
}
