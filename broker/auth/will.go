package auth

import (
	"errors"
	"fmt"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochi publishes a client's will when its connection ends without a
// DISCONNECT, straight to the subscribers: no OnACLCheck and no OnPublish
// is asked, so neither the topic rules nor the jobs hook (which drops a
// device's publishes on reply and notification topics) would see it. A
// will on another thing's notify-next would reach that thing's device as
// a job, and, retained, every later subscriber too. So the hook checks a
// will as the publish it is, when the client connects (a will the client
// could not publish refuses the connection, as Mosquitto does) and again
// when mochi sends it.

// checkWill refuses a CONNECT whose will the client may not publish.
func (h *Hook) checkWill(cl *mqtt.Client, identity string, pk packets.Packet) *refusal {
	if !pk.Connect.WillFlag {
		return nil
	}
	_, enforced := h.Identity(cl)
	if err := h.willAllowed(identity, enforced, pk.Connect.WillTopic, pk.Connect.WillRetain); err != nil {
		return &refusal{code: packets.ErrNotAuthorized, err: fmt.Errorf("will: %w", err)}
	}
	return nil
}

// OnWill checks the will again as mochi is about to publish it; a will
// that may not be published is dropped (mochi publishes a will without a
// topic to nobody).
func (h *Hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	thing, enforced := h.Identity(cl)
	if err := h.willAllowed(thing, enforced, will.TopicName, will.Retain); err != nil {
		h.log.Warn("dropped a will the client may not publish", "client", cl.ID, "thing", thing,
			"topic", will.TopicName, "retain", will.Retain, "error", err)
		return mqtt.Will{}, nil
	}
	return will, nil
}

// willAllowed says whether thing may have mochi publish a will on topic,
// retained or not: a valid topic name within the length limit, none of
// the broker's $ topics (a will bypasses the jobs hook, so it could pose
// as the broker's reply or notification), and, when access rules apply,
// a topic the thing may publish to; a retained will needs the right to
// retain, which the topic rules grant with the right to publish.
func (h *Hook) willAllowed(thing string, enforced bool, topic string, retain bool) error {
	switch {
	case topic == "":
		return errors.New("no topic")
	case len(topic) > h.opts.MaxTopicLength:
		return fmt.Errorf("topic of %d bytes, over the limit of %d", len(topic), h.opts.MaxTopicLength)
	case strings.ContainsAny(topic, "+#\x00"):
		return fmt.Errorf("topic %q is not a topic name", topic)
	case strings.HasPrefix(topic, "$"):
		// $aws/things/{thing}/jobs/... among them.
		return fmt.Errorf("topic %q is reserved for the broker", topic)
	}
	if !enforced {
		return nil
	}
	if !h.allowed(thing, topic, true) {
		return fmt.Errorf("thing %s may not publish to %q", thing, topic)
	}
	if retain && !h.mayRetain(thing, topic) {
		return fmt.Errorf("thing %s may not retain a message on %q", thing, topic)
	}
	return nil
}

// mayRetain says whether thing may retain a message on topic: the topic
// rules grant it where they grant publishing (the jobs topics, which they
// do not cover, are never retained: the jobs hook consumes a device's
// publishes there).
func (h *Hook) mayRetain(thing, topic string) bool {
	return !strings.HasPrefix(topic, "$") && h.allowed(thing, topic, true)
}
