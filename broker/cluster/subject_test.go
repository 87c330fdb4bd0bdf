package cluster

import (
	"slices"
	"testing"
)

// matches reports whether NATS delivers a publish on subject to a
// subscription on pattern.
func matches(pattern, subject string) bool {
	p, s := splitTokens(pattern), splitTokens(subject)
	for i, tok := range p {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

func splitTokens(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// TestSubjects: every topic becomes a valid NATS subject, one to one, and
// a filter's subjects match exactly the topics MQTT matches (leaving the
// $-topic rule to mochi).
func TestSubjects(t *testing.T) {
	topics := []string{"a", "a/b", "a/b/c", "a//c", "/a", "a/", "a.b/c", "a b/c", "*/>", "~x/y", "$aws/things/t-1/jobs/notify",
		"fleet/pub-1/telemetry", "ünï/cødé"}
	seen := map[string]string{}
	for _, topic := range topics {
		subj := topicSubject("jb.msg", topic)
		for _, tok := range splitTokens(subj) {
			if tok == "" || tok == "*" || tok == ">" {
				t.Errorf("%q -> %q has the token %q", topic, subj, tok)
			}
			for _, c := range tok {
				if c == ' ' || c == '\t' || c == '.' {
					t.Errorf("%q -> %q: token %q has %q", topic, subj, tok, c)
				}
			}
		}
		if other, dup := seen[subj]; dup {
			t.Errorf("%q and %q both become %q", topic, other, subj)
		}
		seen[subj] = topic
	}
	for _, c := range []struct {
		filter string
		match  []string
	}{
		{"a/b", []string{"a/b"}},
		{"a/+", []string{"a/b", "a/"}},
		{"a/#", []string{"a", "a/b", "a/b/c", "a//c", "a/"}},
		{"#", topics},
		{"+/b/#", []string{"a/b", "a/b/c"}},
		{"a.b/+", []string{"a.b/c"}},
		{"$share/g/a/+", []string{"a/b", "a/"}},
	} {
		subjects := filterSubjects("jb.msg", c.filter)
		for _, topic := range topics {
			want := slices.Contains(c.match, topic)
			got := false
			for _, p := range subjects {
				got = got || matches(p, topicSubject("jb.msg", topic))
			}
			if got != want {
				t.Errorf("filter %q (subjects %v) on %q: %v, want %v", c.filter, subjects, topic, got, want)
			}
		}
	}
}
