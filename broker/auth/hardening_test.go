package auth

import (
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"golang.org/x/crypto/bcrypt"
)

// TestWillCheckedWhenSent: mochi asks OnWill as it is about to publish a
// will; one the client may not publish is dropped (no topic: mochi
// publishes it to nobody), one it may goes out unchanged.
func TestWillCheckedWhenSent(t *testing.T) {
	h := newTestHook(t, Options{})
	cl := pipeClient(t, mqtt.New(nil), "dev")
	cl.Properties.Username = []byte("dev")
	for topic, allowed := range map[string]bool{
		"things/dev/status":                      true,
		"things/other/status":                    false,
		"$aws/things/other/jobs/notify-next":     false,
		"$aws/things/dev/jobs/start-next":        false,
		"$aws/events/job/j/completed":            false,
		"things/dev/+":                           false,
		"things/dev/" + strings.Repeat("x", 300): false,
	} {
		for _, retain := range []bool{false, true} {
			will := mqtt.Will{TopicName: topic, Payload: []byte("x"), Retain: retain, Qos: 1}
			got, err := h.OnWill(cl, will)
			if err != nil {
				t.Fatal(err)
			}
			if sent := got.TopicName != ""; sent != allowed {
				t.Errorf("will on %s (retain %v): sent %v, want %v", topic, retain, sent, allowed)
			}
			if !allowed && got.Retain {
				t.Errorf("a dropped will on %s is still retained", topic)
			}
		}
	}
}

// TestClientIDOwner: a client ID belongs to the thing of its name, or to
// the longest thing name it starts with followed by "-".
func TestClientIDOwner(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	var file string
	for _, thing := range []string{"pump", "pump-42", "valve"} {
		file += thing + ":" + string(hash) + "\n"
	}
	p, err := ParsePasswords([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"pump": "pump", "pump-1": "pump", "pump-42": "pump-42", "pump-42-a": "pump-42", "pump-43-a": "pump",
		"pumpx": "", "valve-": "valve", "-pump": "", "": "", "pump42": "",
	} {
		got, ok := p.Owner(id)
		if got != want || ok != (want != "") {
			t.Errorf("Owner(%q) = %q, %v; want %q", id, got, ok, want)
		}
	}
}

// TestUnknownThingCostsAsMuch: the login of a thing that is not in the
// file is checked against a hash at the cost of the file's own hashes, so
// that it takes as long as a wrong password of a known thing (a dummy at
// bcrypt's default cost made things with costlier hashes stand out).
func TestUnknownThingCostsAsMuch(t *testing.T) {
	var file string
	for i, cost := range []int{bcrypt.MinCost + 1, bcrypt.MinCost + 1, bcrypt.MinCost} {
		hash, err := bcrypt.GenerateFromPassword([]byte("pw"), cost)
		if err != nil {
			t.Fatal(err)
		}
		file += "thing-" + string(rune('a'+i)) + ":" + string(hash) + "\n"
	}
	p, err := ParsePasswords([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check("nobody", []byte("pw")); err == nil {
		t.Fatal("an unknown thing logged in")
	}
	if cost, err := bcrypt.Cost(p.dummy()); err != nil || cost != bcrypt.MinCost+1 {
		t.Fatalf("unknown things are checked at cost %d (%v), want %d, the file's", cost, err, bcrypt.MinCost+1)
	}
}

// TestLoginBackoffWaits follows the waits of one identity and one address
// on a controlled clock.
func TestLoginBackoffWaits(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	b := newLoginBackoff(10 * time.Second)
	b.now = func() time.Time { return now }
	fail := func(n int, who, from string) {
		for range n {
			b.failed(who, from)
		}
	}
	fail(identityFreeFailures, "a", "10.0.0.1:1")
	if w := b.wait("a", "10.0.0.1:2"); w != 0 {
		t.Fatalf("a wait after %d failures, the free ones: %v", identityFreeFailures, w)
	}
	for _, want := range []time.Duration{1, 2, 4, 8, 10, 10} {
		fail(1, "a", "10.0.0.1:1")
		if w := b.wait("a", "10.0.0.9:1"); w != want*time.Second && !(want == 10 && w == 10*time.Second) {
			t.Fatalf("wait %v, want %v", w, want*time.Second)
		}
	}
	now = now.Add(10 * time.Second)
	if w := b.wait("a", "10.0.0.9:1"); w != 0 {
		t.Fatalf("still waiting after the longest wait: %v", w)
	}
	b.succeeded("a", "10.0.0.1:1")
	fail(1, "a", "10.0.0.1:1")
	if w := b.wait("a", "10.0.0.9:1"); w != 0 {
		t.Fatalf("a success did not forget the failures: %v", w)
	}
	// The address: its own allowance, shared by every identity.
	for i := range sourceFreeFailures + 1 {
		fail(1, "user-"+string(rune('a'+i)), "10.0.0.2:5")
	}
	if w := b.wait("anyone", "10.0.0.2:6"); w != time.Second {
		t.Fatalf("address wait %v, want 1s", w)
	}
	if w := b.wait("anyone", "10.0.0.3:6"); w != 0 {
		t.Fatalf("another address waits %v", w)
	}
	// Off.
	off := newLoginBackoff(-1)
	for range 100 {
		off.failed("a", "x:1")
	}
	if w := off.wait("a", "x:1"); w != 0 {
		t.Fatalf("backoff off, yet a wait of %v", w)
	}
}
