package topics

import (
	"errors"
	"strings"
)

// AWS IoT commands topics (COMMANDS.md §3.1):
//
//	$aws/commands/{things|clients}/{id}/executions/{executionId}/request[/json|/cbor]
//	$aws/commands/{things|clients}/{id}/executions/{executionId}/response[/json|/cbor]
//	$aws/commands/{things|clients}/{id}/executions/{executionId}/response/accepted[/json|/cbor]
//	$aws/commands/{things|clients}/{id}/executions/{executionId}/response/rejected[/json|/cbor]
//	$aws/events/commandExecution/{commandId}/{status}

// CommandsPrefix starts every commands topic.
const CommandsPrefix = "$aws/commands/"

// Device types of commands topics.
const (
	CommandThings  = "things"
	CommandClients = "clients"
)

// CommandKind says what role a commands topic plays.
type CommandKind uint8

// The kinds of commands topics.
const (
	CommandNone CommandKind = iota
	// CommandRequest carries an execution to the device.
	CommandRequest
	// CommandResponse is where the device reports its status.
	CommandResponse
	// CommandAccepted and CommandRejected answer a CommandResponse.
	CommandAccepted
	CommandRejected
)

// Errors of ParseCommand: ErrNotCommands for a topic outside
// $aws/commands/, ErrInvalidCommandTopic for one inside that maps to no
// API (AWS answers InvalidTopic).
var (
	ErrNotCommands         = errors.New("not a commands topic")
	ErrInvalidCommandTopic = errors.New("topic maps to no commands API")
)

// CommandTopic is a parsed commands topic.
type CommandTopic struct {
	DeviceType  string // "things" or "clients"
	DeviceID    string // thing name or MQTT client id
	ExecutionID string
	Kind        CommandKind
	// Format is the last level: "json", "cbor", or "" for none.
	Format string
}

// ValidCommandExecutionID reports whether id fits the executionId pattern
// [a-zA-Z0-9_-]{1,64}.
func ValidCommandExecutionID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validCommandClientID reports whether a client id can be a topic level.
func validCommandClientID(id string) bool {
	return id != "" && len(id) <= 128 && !strings.ContainsAny(id, "/+#\x00")
}

// ParseCommand parses a commands topic.
func ParseCommand(topic string) (CommandTopic, error) {
	rest, ok := strings.CutPrefix(topic, CommandsPrefix)
	if !ok {
		return CommandTopic{}, ErrNotCommands
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 5 || len(parts) > 7 || parts[2] != "executions" {
		return CommandTopic{}, ErrInvalidCommandTopic
	}
	t := CommandTopic{DeviceType: parts[0], DeviceID: parts[1], ExecutionID: parts[3]}
	switch t.DeviceType {
	case CommandThings:
		if !ValidThingName(t.DeviceID) {
			return CommandTopic{}, ErrInvalidCommandTopic
		}
	case CommandClients:
		if !validCommandClientID(t.DeviceID) {
			return CommandTopic{}, ErrInvalidCommandTopic
		}
	default:
		return CommandTopic{}, ErrInvalidCommandTopic
	}
	if !ValidCommandExecutionID(t.ExecutionID) {
		return CommandTopic{}, ErrInvalidCommandTopic
	}
	tail := parts[4:]
	format := func(s string) bool {
		if s == "json" || s == "cbor" {
			t.Format = s
			return true
		}
		return false
	}
	switch {
	case tail[0] == "request" && len(tail) == 1:
		t.Kind = CommandRequest
	case tail[0] == "request" && len(tail) == 2 && format(tail[1]):
		t.Kind = CommandRequest
	case tail[0] == "response" && len(tail) == 1:
		t.Kind = CommandResponse
	case tail[0] == "response" && len(tail) == 2 && format(tail[1]):
		t.Kind = CommandResponse
	case tail[0] == "response" && (tail[1] == "accepted" || tail[1] == "rejected") && (len(tail) == 2 || len(tail) == 3 && format(tail[2])):
		t.Kind = CommandAccepted
		if tail[1] == "rejected" {
			t.Kind = CommandRejected
		}
	default:
		return CommandTopic{}, ErrInvalidCommandTopic
	}
	return t, nil
}

func commandBase(deviceType, deviceID, executionID string) string {
	return CommandsPrefix + deviceType + "/" + deviceID + "/executions/" + executionID + "/"
}

func withFormat(topic, format string) string {
	if format == "" {
		return topic
	}
	return topic + "/" + format
}

// CommandRequestTopic is the topic an execution's request is published
// on; format is "json", "cbor" or "".
func CommandRequestTopic(deviceType, deviceID, executionID, format string) string {
	return withFormat(commandBase(deviceType, deviceID, executionID)+"request", format)
}

// CommandResponseTopic is the topic a device reports its status on.
func CommandResponseTopic(deviceType, deviceID, executionID, format string) string {
	return withFormat(commandBase(deviceType, deviceID, executionID)+"response", format)
}

// CommandReplyTopic is the accepted or rejected topic answering a response
// topic t.
func CommandReplyTopic(t CommandTopic, accepted bool) string {
	kind := "rejected"
	if accepted {
		kind = "accepted"
	}
	return withFormat(commandBase(t.DeviceType, t.DeviceID, t.ExecutionID)+"response/"+kind, t.Format)
}

// String rebuilds the topic.
func (t CommandTopic) String() string {
	switch t.Kind {
	case CommandRequest:
		return CommandRequestTopic(t.DeviceType, t.DeviceID, t.ExecutionID, t.Format)
	case CommandResponse:
		return CommandResponseTopic(t.DeviceType, t.DeviceID, t.ExecutionID, t.Format)
	case CommandAccepted, CommandRejected:
		return CommandReplyTopic(t, t.Kind == CommandAccepted)
	}
	return ""
}

// CommandExecutionEvent is the topic of a command execution event.
func CommandExecutionEvent(commandID, status string) string {
	return "$aws/events/commandExecution/" + commandID + "/" + status
}
