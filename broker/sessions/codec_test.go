package sessions

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestMessageRoundTrip(t *testing.T) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true, Dup: true},
		TopicName:   "$aws/things/pump/jobs/notify-next",
		Payload:     []byte(`{"execution":{"jobId":"j"}}`),
		PacketID:    77,
		Properties: packets.Properties{
			PayloadFormat: 1, PayloadFormatFlag: true, ContentType: "application/json",
			ResponseTopic: "r/t", CorrelationData: []byte{1, 2}, SubscriptionIdentifier: []int{3, 9},
			User:       []packets.UserProperty{{Key: "k", Val: "v"}},
			TopicAlias: 4, TopicAliasFlag: true, MessageExpiryInterval: 30,
		},
		Created: 1_700_000_000, Expiry: 1_700_000_030,
	}
	m := meta{sent: true, replaceable: true, packetID: 77, created: pk.Created, expiry: pk.Expiry}
	b, err := encodeMessage(pk, m)
	if err != nil {
		t.Fatal(err)
	}
	got, gm, err := decodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	m.topic = pk.TopicName
	if gm != m {
		t.Errorf("meta = %+v, want %+v", gm, m)
	}
	if got.TopicName != pk.TopicName || !bytes.Equal(got.Payload, pk.Payload) || got.FixedHeader.Qos != 1 ||
		!got.FixedHeader.Retain || got.FixedHeader.Dup || got.Created != pk.Created || got.Expiry != pk.Expiry || got.PacketID != 0 {
		t.Errorf("decoded %+v", got)
	}
	want := pk.Properties
	want.TopicAlias, want.TopicAliasFlag, want.MessageExpiryInterval = 0, false, 0
	if !reflect.DeepEqual(got.Properties, want) {
		t.Errorf("properties = %+v, want %+v", got.Properties, want)
	}
	if md, err := decodeMeta(b); err != nil || md != m {
		t.Errorf("decodeMeta = %+v, %v", md, err)
	}
	for _, bad := range [][]byte{nil, {1}, b[:headerLen+3], append([]byte{9}, b[1:]...)} {
		if _, _, err := decodeMessage(bad); err == nil {
			t.Errorf("decoded % x", bad)
		}
	}
}
