package auth

import "testing"

func TestCommandsACL(t *testing.T) {
	const things = "$aws/commands/things/"
	for _, tc := range []struct {
		thing, client, topic string
		write, ok            bool
	}{
		{"T1", "T1", things + "T1/executions/+/request/json", false, true},
		{"T1", "T1", things + "T1/#", false, true},
		{"T1", "T1", "$share/g/" + things + "T1/executions/+/request", false, true},
		{"T1", "T1", things + "T2/executions/+/request/json", false, false},
		{"T1", "T1", things + "+/executions/+/request/json", false, false},
		{"T1", "T1", "$aws/commands/#", false, false},
		{"T1", "dev+1", "$aws/commands/clients/dev+1/#", false, false}, // a wildcard in the id grants nothing
		{"T1", "dev-1", "$aws/commands/clients/dev-1/executions/E/request", false, true},
		{"T1", "T1", things + "T1/executions/E1/response/json", true, true},
		{"T1", "T1", things + "T1/executions/E1/response/cbor", true, true},
		{"T1", "T1", things + "T1/executions/E1/response", true, true},
		{"T1", "T1", things + "T1/executions/E1/request/json", true, false},
		{"T1", "T1", things + "T1/executions/E1/response/accepted/json", true, false},
		{"T1", "T1", things + "T2/executions/E1/response/json", true, false},
		{"T1", "dev-1", "$aws/commands/clients/dev-1/executions/E1/response/json", true, true},
		{"T1", "dev-1", "$aws/commands/clients/dev-2/executions/E1/response/json", true, false},
		// Malformed topics of its own reach the hook, which answers them
		// InvalidTopic; another device's are refused.
		{"T1", "T1", things + "T1/executions/E.1/response/json", true, true},
		{"T1", "T1", things + "T1/executions/E1/response/xml", true, true},
		{"T1", "dev-1", "$aws/commands/clients/dev-1/executions/E1/status", true, true},
		{"T1", "T1", things + "T2/executions/E.1/response/json", true, false},
		{"T1", "T1", "$aws/commands/devices/T1/executions/E1/response/json", true, false},
		{"T1", "T1", things + "T1", true, false},
	} {
		ok, decided := commandsACL(tc.thing, tc.client, tc.topic, tc.write)
		if !decided || ok != tc.ok {
			t.Errorf("thing %s client %s %s (write %v): ok=%v decided=%v, want ok=%v", tc.thing, tc.client, tc.topic, tc.write, ok, decided, tc.ok)
		}
	}
	if _, decided := commandsACL("T1", "T1", "$aws/things/T1/jobs/get", true); decided {
		t.Error("a jobs topic was decided by the commands rules")
	}
}
