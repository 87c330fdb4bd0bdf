package auth

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestWithin(t *testing.T) {
	cases := []struct {
		filter, rule string
		want         bool
	}{
		{"things/a/x", "things/a/#", true},
		{"things/a", "things/a/#", true},
		{"things/a/#", "things/a/#", true},
		{"things/a/+/y", "things/a/#", true},
		{"things/+/x", "things/a/#", false},
		{"things/#", "things/a/#", false},
		{"#", "things/a/#", false},
		{"things/b/x", "things/a/#", false},
		{"things/a/x", "things/+/x", true},
		{"things/+/x", "things/+/x", true},
		{"things/#", "things/+/x", false},
		{"things/a/x/y", "things/+/x", false},
		{"things/a", "things/a/x", false},
		{"$aws/events/job/j/canceled", "$aws/events/#", true},
		{"$aws/events/#", "$aws/events/#", true},
		{"$aws/things/a/jobs/#", "#", false}, // # does not reach $ topics
		{"$aws/+/x", "$aws/events/#", false},
	}
	for _, c := range cases {
		if got := Within(c.filter, c.rule); got != c.want {
			t.Errorf("Within(%q, %q) = %v, want %v", c.filter, c.rule, got, c.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	h := &Hook{opts: Options{TopicRules: DefaultTopicRules}, operators: map[string]bool{"ops": true}}
	cases := []struct {
		thing, topic string
		write, want  bool
	}{
		{"a", "$aws/things/a/jobs/get", true, true},
		{"a", "$aws/things/a/jobs/j1/update", true, true},
		{"a", "$aws/things/a/jobs/$next/get", true, true},
		{"a", "$aws/things/a/jobs/j1/update/accepted", true, false}, // replies come from the broker
		{"a", "$aws/things/a/jobs/notify-next", true, false},
		{"a", "$aws/things/a/jobs/what/ever/else", true, true}, // answered InvalidTopic by the jobs hook
		{"a", "$aws/things/b/jobs/get", true, false},
		{"a", "things/a/telemetry", true, true},
		{"a", "things/b/telemetry", true, false},
		{"a", "$aws/events/job/j/canceled", false, false},
		{"ops", "$aws/events/#", false, true},
		{"ops", "$aws/events/job/j/canceled", true, false}, // operators listen, they do not publish events
		{"a", "$aws/things/a/jobs/+/update/+", false, true},
		{"a", "$share/g/$aws/things/a/jobs/notify", false, true},
		{"a", "$share/g/$aws/things/b/jobs/notify", false, false},
		{"a", "$aws/things/+/jobs/notify", false, false},
	}
	for _, c := range cases {
		if got := h.allowed(c.thing, c.topic, c.write); got != c.want {
			t.Errorf("%s %s (publish %v) = %v, want %v", c.thing, c.topic, c.write, got, c.want)
		}
	}
}

func TestValidateTopicRule(t *testing.T) {
	for _, ok := range []string{"things/{thing}/#", "telemetry/{thing}", "shared/+/x", "#"} {
		if err := ValidateTopicRule(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/#/b", "things/x{thing}", "a+/b", "$aws/things/{thing}/shadow/#"} {
		if err := ValidateTopicRule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParsePasswords(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	good := "# devices\n\nthing-1:" + string(hash) + "\n"
	p, err := ParsePasswords([]byte(good))
	if err != nil || p.Len() != 1 {
		t.Fatalf("%v, %d entries", err, p.Len())
	}
	if err := p.Check("thing-1", []byte("pw")); err != nil {
		t.Errorf("right password: %v", err)
	}
	if err := p.Check("thing-1", []byte("pw")); err != nil {
		t.Errorf("right password, remembered: %v", err)
	}
	if err := p.Check("thing-1", []byte("px")); err == nil {
		t.Error("wrong password accepted after a right one")
	}
	if err := p.Check("thing-2", []byte("pw")); err == nil {
		t.Error("unknown thing accepted")
	}
	for _, bad := range []struct{ text, want string }{
		{"thing-1\n", "line 1: want thing:bcrypt-hash"},
		{"bad thing:" + string(hash), "not a thing name"},
		{"thing-1:plaintext", "not a bcrypt hash"},
		{good + good, "listed twice"},
	} {
		if _, err := ParsePasswords([]byte(bad.text)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.text, err, bad.want)
		}
	}
}
