package auth

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
)

// FuzzConnectWill sends arbitrary CONNECTs with wills to a real mochi
// server whose only access hook is this one (identity password, things
// "dev" and "victim", the default topic rules), drops each connection
// without a DISCONNECT so that mochi sends the will, and watches every
// topic with the server's own inline subscriptions. Whatever the CONNECT,
// a message published for the client must be one its thing may publish:
// a topic of things/dev/# (the default rule), from an accepted
// connection, never a $ topic, never another thing's; and no message is
// retained elsewhere. Raw bytes in place of a CONNECT must neither crash
// the server nor publish anything.
func FuzzConnectWill(f *testing.F) {
	f.Add(byte(4), "dev", "dev", "pw", "things/dev/status", []byte("offline"), byte(1), true, []byte(nil))
	f.Add(byte(4), "dev", "dev", "pw", "$aws/things/victim/jobs/notify-next", []byte(`{"execution":{"jobId":"evil"}}`), byte(1), true, []byte(nil))
	f.Add(byte(5), "dev-2", "dev", "pw", "things/victim/cmd", []byte("reboot"), byte(0), false, []byte(nil))
	f.Add(byte(5), "victim", "dev", "pw", "things/victim/status", []byte("x"), byte(1), true, []byte(nil))
	f.Add(byte(4), "", "dev", "pw", "things/dev/#", []byte("x"), byte(0), false, []byte(nil))
	f.Add(byte(4), "dev", "dev", "wrong", "things/dev/status", []byte("x"), byte(0), false, []byte(nil))
	f.Add(byte(4), "", "", "", "", []byte(nil), byte(0), false, []byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x06, 0x00, 0x1e, 0x00, 0x00})

	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		f.Fatal(err)
	}
	p, err := ParsePasswords([]byte("dev:" + string(hash) + "\nvictim:" + string(hash) + "\n"))
	if err != nil {
		f.Fatal(err)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true})
	if err := srv.AddHook(new(Hook), &Options{Mode: ModePassword, Passwords: p, LoginBackoff: -1, MaxConnections: -1}); err != nil {
		f.Fatal(err)
	}
	var mu sync.Mutex
	var published []packets.Packet
	for i, filter := range []string{"#", "$aws/#", "$SYS/#"} {
		if err := srv.Subscribe(filter, i+1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
			mu.Lock()
			published = append(published, pk)
			mu.Unlock()
		}); err != nil {
			f.Fatal(err)
		}
	}

	f.Fuzz(func(t *testing.T, version byte, id, user, pass, topic string, payload []byte, qos byte, retain bool, raw []byte) {
		mu.Lock()
		published = published[:0]
		mu.Unlock()
		var in bytes.Buffer
		if len(raw) > 0 {
			in.Write(raw)
		} else {
			pk := packets.Packet{
				FixedHeader:     packets.FixedHeader{Type: packets.Connect},
				ProtocolVersion: 4 + version%2,
				Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30,
					ClientIdentifier: id, WillFlag: true, WillTopic: topic, WillPayload: payload,
					WillQos: qos % 3, WillRetain: retain},
			}
			if user != "" {
				pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(user)
				pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(pass)
			}
			if err := pk.ConnectEncode(&in); err != nil {
				return
			}
		}
		client, server := net.Pipe()
		// The broker's listeners give a connection this long to send its
		// CONNECT (here short: a cut CONNECT waits for it).
		_ = server.SetDeadline(time.Now().Add(100 * time.Millisecond))
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.EstablishConnection("fuzz", server)
		}()
		// Send the CONNECT, wait for the answer (or the end), then hang
		// up without a DISCONNECT.
		answered := make(chan struct{})
		accepted := false
		go func() {
			defer io.Copy(io.Discard, client)
			defer close(answered)
			// The whole CONNACK: a pipe's write returns only once read,
			// and mochi goes on to read the client's packets (and so to
			// send its will) only once its CONNACK is written.
			r := bufio.NewReader(client)
			first, err := r.ReadByte()
			if err != nil {
				return
			}
			n, _, err := packets.DecodeLength(r)
			if err != nil {
				return
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(r, body); err == nil {
				accepted = first == packets.Connack<<4 && len(body) >= 2 && body[1] == 0
			}
		}()
		_ = client.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = client.Write(in.Bytes())
		select {
		case <-answered:
		case <-time.After(10 * time.Second):
			t.Fatal("no CONNACK and no close")
		}
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not let go of a closed connection")
		}
		mu.Lock()
		got := append([]packets.Packet(nil), published...)
		mu.Unlock()
		for _, m := range got {
			if !devTopic(m.TopicName) || strings.ContainsAny(m.TopicName, "+#") {
				t.Fatalf("a will on %q (retain %v) was published for client %q, user %q", m.TopicName, m.FixedHeader.Retain, id, user)
			}
			if user != "dev" || pass != "pw" {
				t.Fatalf("a will was published for a refused login (user %q)", user)
			}
		}
		// The harness sees wills: one the thing may publish goes out.
		if accepted && len(raw) == 0 && devTopic(topic) && len(topic) <= DefaultMaxTopicLength &&
			!strings.ContainsAny(topic, "+#\x00") && len(got) != 1 {
			t.Fatalf("an accepted connection's will on %q was published %d times, want once", topic, len(got))
		}
		for _, m := range srv.Topics.Retained.GetAll() {
			if !devTopic(m.TopicName) {
				t.Fatalf("a message is retained on %q", m.TopicName)
			}
		}
	})
}

// devTopic reports whether topic is one of things/dev/#, the topics the
// default rule gives thing "dev".
func devTopic(topic string) bool {
	return topic == "things/dev" || strings.HasPrefix(topic, "things/dev/")
}
