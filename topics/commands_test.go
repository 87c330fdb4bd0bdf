package topics

import (
	"errors"
	"testing"
)

func TestParseCommand(t *testing.T) {
	ok := []struct {
		topic string
		want  CommandTopic
	}{
		{"$aws/commands/things/T1/executions/E1/request/json", CommandTopic{"things", "T1", "E1", CommandRequest, "json"}},
		{"$aws/commands/things/T1/executions/E1/request", CommandTopic{"things", "T1", "E1", CommandRequest, ""}},
		{"$aws/commands/clients/dev-7/executions/E1/response/json", CommandTopic{"clients", "dev-7", "E1", CommandResponse, "json"}},
		{"$aws/commands/things/T1/executions/E1/response/cbor", CommandTopic{"things", "T1", "E1", CommandResponse, "cbor"}},
		{"$aws/commands/things/T1/executions/E1/response", CommandTopic{"things", "T1", "E1", CommandResponse, ""}},
		{"$aws/commands/things/T1/executions/E1/response/accepted/json", CommandTopic{"things", "T1", "E1", CommandAccepted, "json"}},
		{"$aws/commands/things/T1/executions/E1/response/rejected", CommandTopic{"things", "T1", "E1", CommandRejected, ""}},
	}
	for _, tc := range ok {
		got, err := ParseCommand(tc.topic)
		if err != nil || got != tc.want {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v", tc.topic, got, err, tc.want)
		}
		if got.String() != tc.topic {
			t.Errorf("%q rebuilt as %q", tc.topic, got.String())
		}
	}
	for _, topic := range []string{
		"$aws/commands/things/T1/executions/E1/request/xml",
		"$aws/commands/devices/T1/executions/E1/request",
		"$aws/commands/things/T 1/executions/E1/request",
		"$aws/commands/things/T1/executions/E.1/request",
		"$aws/commands/things/T1/executions/+/request/json",
		"$aws/commands/things/T1/executions/E1/response/accepted/json/x",
		"$aws/commands/things/T1/jobs/E1/request",
		"$aws/commands/things/T1",
	} {
		if _, err := ParseCommand(topic); !errors.Is(err, ErrInvalidCommandTopic) {
			t.Errorf("ParseCommand(%q) = %v, want ErrInvalidCommandTopic", topic, err)
		}
	}
	if _, err := ParseCommand("$aws/things/T1/jobs/get"); !errors.Is(err, ErrNotCommands) {
		t.Errorf("a jobs topic: %v", err)
	}
}

// FuzzParseCommand checks that ParseCommand never panics, returns only its
// own errors, and that every topic it accepts rebuilds to itself.
func FuzzParseCommand(f *testing.F) {
	f.Add("$aws/commands/things/T1/executions/E1/request/json")
	f.Add("$aws/commands/clients/c/executions/E1/response/accepted/cbor")
	f.Add("$aws/commands/things/T1/executions/E1/response")
	f.Add("$aws/commands/things//executions//request")
	f.Fuzz(func(t *testing.T, topic string) {
		got, err := ParseCommand(topic)
		if err != nil {
			if !errors.Is(err, ErrNotCommands) && !errors.Is(err, ErrInvalidCommandTopic) {
				t.Fatalf("foreign error %v", err)
			}
			return
		}
		if got.String() != topic {
			t.Fatalf("%q rebuilt as %q", topic, got.String())
		}
		if !ValidCommandExecutionID(got.ExecutionID) {
			t.Fatalf("accepted execution id %q", got.ExecutionID)
		}
	})
}
