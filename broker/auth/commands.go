package auth

import (
	"strings"

	"github.com/jobsbroker/jobsbroker/topics"
)

// commandsACL decides access to the AWS IoT commands topics for an
// identified client: a thing reads only below $aws/commands/things/{its
// name}/ and a client below $aws/commands/clients/{its client ID}/, and
// each publishes only its own status reports (.../response[/json|/cbor])
// and, below its own prefix, topics that map to no API (answered
// InvalidTopic); requests and replies come from the broker alone (COMMANDS.md §3.1,
// mirroring AWS's policy variables iot:Connection.Thing.ThingName and
// iot:ClientId). decided is false for topics outside $aws/commands/.
func commandsACL(thing, clientID, topic string, write bool) (ok, decided bool) {
	filter := topic
	if !write {
		filter = stripShare(topic)
	}
	if !strings.HasPrefix(filter, topics.CommandsPrefix) {
		return false, false
	}
	own := []string{topics.CommandsPrefix + topics.CommandThings + "/" + thing + "/",
		topics.CommandsPrefix + topics.CommandClients + "/" + clientID + "/"}
	if write {
		t, err := topics.ParseCommand(topic)
		if err != nil {
			// A malformed topic below the device's own prefix is let
			// through so that the hook can answer it InvalidTopic.
			return strings.HasPrefix(topic, own[0]) || strings.HasPrefix(topic, own[1]), true
		}
		if t.Kind != topics.CommandResponse {
			return false, true
		}
		return strings.HasPrefix(topic, own[0]) && t.DeviceType == topics.CommandThings ||
			strings.HasPrefix(topic, own[1]) && t.DeviceType == topics.CommandClients, true
	}
	for _, p := range own {
		if strings.HasPrefix(filter, p) && !strings.ContainsAny(p[len(topics.CommandsPrefix):], "+#") {
			return true, true
		}
	}
	return false, true
}
