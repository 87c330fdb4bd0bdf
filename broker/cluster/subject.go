package cluster

import (
	"encoding/base64"
	"strings"
)

// How MQTT topics become NATS subjects. A topic's levels become the
// subject's tokens, so that NATS routes a publish only to the nodes whose
// clients subscribe to a matching filter: an MQTT filter's + becomes *,
// and its # becomes > (and, since # also matches its parent level, a
// second subject without it). A level that NATS could misread (empty, or
// with a character outside plainLevel's) is sent as "~" and the level in
// unpadded base64url; no plain token starts with "~", so the mapping is
// one to one.
//
// The receiving node delivers through mochi, which applies MQTT's own
// matching (a + or # does not match a topic starting with $), so a subject
// that matches a little more than the filter costs only traffic.

// plainLevel reports whether an MQTT topic level can be a NATS token as it
// is.
func plainLevel(l string) bool {
	if l == "" {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '$' || c == ':' || c == '@' || c == '=':
		default:
			return false
		}
	}
	return true
}

func token(level string) string {
	if plainLevel(level) {
		return level
	}
	return "~" + base64.RawURLEncoding.EncodeToString([]byte(level))
}

// topicSubject is the subject a publish on topic goes out on, under base.
func topicSubject(base, topic string) string {
	var b strings.Builder
	b.Grow(len(base) + len(topic) + 8)
	b.WriteString(base)
	for level := range strings.SplitSeq(topic, "/") {
		b.WriteByte('.')
		b.WriteString(token(level))
	}
	return b.String()
}

// filterSubjects are the subjects a node subscribes to, under base, for
// an MQTT topic filter: one, or two for a filter ending in # (which also
// matches its parent level). A shared subscription's filter
// ($share/group/filter) is its filter's.
func filterSubjects(base, filter string) []string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			filter = f
		}
	}
	levels := strings.Split(filter, "/")
	toks := make([]string, 0, len(levels))
	for _, l := range levels {
		switch l {
		case "+":
			toks = append(toks, "*")
		case "#":
			toks = append(toks, ">")
		default:
			toks = append(toks, token(l))
		}
	}
	full := base + "." + strings.Join(toks, ".")
	if n := len(toks); n > 0 && toks[n-1] == ">" {
		if n == 1 {
			return []string{full} // "#" matches every topic; every topic has a level
		}
		return []string{full, base + "." + strings.Join(toks[:n-1], ".")}
	}
	return []string{full}
}
