package jobshook

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/wire"
	"github.com/jobsbroker/jobsbroker/topics"
)

// awsPacketLimit is AWS IoT's MQTT message limit, the broker's default
// -max-packet-size.
const awsPacketLimit = 128 << 10

// TestReplySizeWithinPacketLimit builds the largest message of each kind
// the limits let through (the longest thing name and job id, a job
// document at both of its limits, statusDetails of ten pairs whose values
// are 1,024 control characters, each escaped to six bytes, a 64-character
// clientToken of the same, the longest rejection message) and checks that
// its whole MQTT 5 PUBLISH packet fits in 128 KB.
func TestReplySizeWithinPacketLimit(t *testing.T) {
	details := map[string]string{}
	for i := range store.MaxStatusDetails {
		key := strings.Repeat(string(rune('a'+i)), store.MaxStatusDetailsKeyLength)
		details[key] = strings.Repeat("\x01", store.MaxStatusDetailsValueLength)
	}
	if err := store.ValidateStatusDetails(details); err != nil {
		t.Fatalf("the largest statusDetails must be valid: %v", err)
	}
	// Two-byte characters reach both document limits at once; '<' is six
	// bytes when HTML-escaped, which the encoder must not do.
	fill := store.MaxDocumentLength - len(`{"a":""}`)
	docs := map[string]string{
		"two-byte characters": `{"a":"` + strings.Repeat("é", fill-8) + strings.Repeat("<", 8) + `"}`,
		"angle brackets":      `{"a":"` + strings.Repeat("<", fill) + `"}`,
	}
	for name, doc := range docs {
		if err := store.ValidateDocument(doc); err != nil {
			t.Fatalf("the largest document (%s) must be valid: %v", name, err)
		}
		t.Run(name, func(t *testing.T) { checkReplySizes(t, doc, details) })
	}
	if doc := docs["two-byte characters"]; len(doc) < store.MaxDocumentBytes-16 {
		t.Fatalf("document of %d bytes, want about %d", len(doc), store.MaxDocumentBytes)
	}
}

func checkReplySizes(t *testing.T, doc string, details map[string]string) {
	thing, job := strings.Repeat("t", 128), strings.Repeat("j", 64)
	token := strings.Repeat("\x01", MaxClientTokenLength)
	now := time.Unix(1717000000, 0)
	started := now.Add(-time.Minute)
	step := now.Add(time.Hour)
	e := &store.Execution{
		JobID: job, ThingName: thing, Status: store.StatusInProgress, StatusDetails: details,
		QueuedAt: started, StartedAt: started, LastUpdatedAt: now, VersionNumber: 1 << 62, ExecutionNumber: 1 << 62,
		StepDeadline: step,
	}
	base := "$aws/things/" + thing + "/jobs/"
	state := e.State()
	reply := func(v any) []byte {
		b, rej := marshal(v)
		if rej != nil {
			t.Fatal(rej.message)
		}
		return b
	}
	notifyNext, err := notifyNextPayload(e, doc, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name, topic string
		payload     []byte
	}{
		{"describe reply", topics.Accepted(base + job + "/get"),
			reply(executionReply{Execution: execution(e, doc, true, now), Timestamp: now.Unix(), ClientToken: &token})},
		{"update reply with state and document", topics.Accepted(base + job + "/update"),
			reply(updateReply{ExecutionState: wire.NewState(state), JobDocument: []byte(doc), Timestamp: now.Unix(), ClientToken: &token})},
		{"rejection with state", topics.Rejected(base + job + "/update"),
			rejectedPayload(&rejection{code: CodeVersionMismatch, message: strings.Repeat("\x01", 4*maxMessageBytes), state: state}, &token, now)},
		{"notify-next", base + "notify-next", notifyNext},
	} {
		if !bytes.Contains(m.payload, []byte(doc)) && m.name != "rejection with state" {
			t.Errorf("%s: the document is not embedded as stored (HTML-escaped?)", m.name)
		}
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
			ProtocolVersion: 5, TopicName: m.topic, Payload: m.payload, PacketID: 65535,
			Properties: packets.Properties{SubscriptionIdentifier: []int{268435455, 268435454}},
		}
		var buf bytes.Buffer
		if err := pk.PublishEncode(&buf); err != nil {
			t.Fatalf("%s: encode: %v", m.name, err)
		}
		t.Logf("%s: %d bytes (payload %d)", m.name, buf.Len(), len(m.payload))
		if buf.Len() > awsPacketLimit {
			t.Errorf("%s: a PUBLISH of %d bytes exceeds the 128 KB packet limit", m.name, buf.Len())
		}
	}
}

// TestRejectionClipsMessage: a rejection never quotes a long value back
// whole, and a clipped message stays valid UTF-8.
func TestRejectionClipsMessage(t *testing.T) {
	long := `status "` + strings.Repeat("é", 100<<10) + `" is not a job execution status`
	got := clip(long, maxMessageBytes)
	if len(got) > maxMessageBytes || !strings.HasSuffix(got, "...") || !strings.HasPrefix(long, strings.TrimSuffix(got, "...")) {
		t.Fatalf("clip gave %d bytes %q", len(got), got)
	}
	var reply struct{ Message string }
	if err := json.Unmarshal(rejectedPayload(&rejection{code: CodeInvalidRequest, message: long}, nil, time.Unix(0, 0)), &reply); err != nil || reply.Message != got {
		t.Fatalf("the rejected reply carries %q (%v), want the clipped message", reply.Message, err)
	}
	if short := "statusDetails has 11 entries"; clip(short, maxMessageBytes) != short {
		t.Fatal("a short message was changed")
	}
}

// BenchmarkReplyEncoding compares encode (no HTML escaping) with
// json.Marshal on a typical describe reply, the cost it adds to each
// request.
func BenchmarkReplyEncoding(b *testing.B) {
	now := time.Unix(1717000000, 0)
	e := &store.Execution{JobID: "fw-2024-05", ThingName: "pump-42", Status: store.StatusInProgress,
		StatusDetails: map[string]string{"step": "install", "progress": "50"}, QueuedAt: now, StartedAt: now,
		LastUpdatedAt: now, VersionNumber: 3, ExecutionNumber: 1}
	token := "c-17"
	reply := executionReply{Execution: execution(e, `{"operation":"install","url":"https://example.invalid/fw.bin"}`, true, now),
		Timestamp: now.Unix(), ClientToken: &token}
	for _, bc := range []struct {
		name string
		enc  func(any) ([]byte, error)
	}{{"encode", encode}, {"json.Marshal", json.Marshal}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.enc(reply); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
