package preload

import (
	"strings"
	"testing"
)

func TestParseNamesTheLineAndField(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"jobz: []\n", `line 1: jobz: unknown key`},
		{"jobs: {}\n", `line 1: jobs: must be a list`},
		{"things:\n  - thingName: a\n    color: red\n", `line 3: things[0] (a).color: unknown key: CreateThing takes thingName, thingTypeName`},
		{"things:\n  - attributePayload: {}\n", `line 2: things[0]: thingName is required`},
		{"things:\n  - thingName: a\n  - thingName: a\n", `line 3: things[1] (a).thingName: "a" is also the item on line 2`},
		{"thingGroups:\n  - thingGroupName: g\n    things: pump\n", `line 3: thingGroups[0] (g).things:`},
		{"jobs:\n  - jobId: j\n    executions:\n      - {thingName: t, status: DONE}\n", `line 4: jobs[0] (j).executions[0]: status "DONE"`},
		{"jobs:\n  - jobId: j\n    executions:\n      - thingName: t\n        status: IN_PROGRESS\n        versionNumber: 1\n", `line 6: jobs[0] (j).executions[0]: versionNumber: an execution that is IN_PROGRESS is at version 2 or more`},
		{"jobs:\n  - jobId: j\n    executions:\n      - {thingName: 'bad name', status: QUEUED}\n", `line 4: jobs[0] (j).executions[0]: thingName:`},
		{"jobs:\n  - jobId: j\n    executions:\n      - {thingName: t, status: QUEUED, versionNumber: 2}\n", `line 4: jobs[0] (j).executions[0]: versionNumber: a QUEUED execution is at version 1`},
		{"jobs:\n  - jobId: j\n    executions:\n      - {thingName: t, status: QUEUED}\n      - {thingName: t, status: QUEUED}\n", `line 5: jobs[0] (j).executions[1]: thing t has a state already`},
	} {
		_, err := Parse([]byte(c.text), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), "preload file p.yaml: "+c.want) {
			t.Errorf("%q:\n got %v\nwant %q", c.text, err, c.want)
		}
	}
}

func TestParseWritesDocumentsAsJSON(t *testing.T) {
	p, err := Parse([]byte(`{"jobs": [{"jobId": "j", "document": {"a": [1, "x"]}, "targets": ["arn:aws:iot:us-east-1:1:thing/t"]}]}`), "p.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.items[0].body); !strings.Contains(got, `"document":"{\"a\":[1,\"x\"]}"`) {
		t.Errorf("body %s: the document is not its JSON text", got)
	}
	if c := p.Counts(); c["jobs"] != 1 || p.Empty() {
		t.Errorf("counts %v", c)
	}
}
