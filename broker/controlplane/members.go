package controlplane

import (
	"reflect"
	"strings"
)

// bodies are the request bodies of the operations BodyMembers knows.
var bodies = map[string]reflect.Type{
	"CreateJob":         reflect.TypeFor[createJobRequest](),
	"CreateJobTemplate": reflect.TypeFor[createJobTemplateRequest](),
	"CreateThing":       reflect.TypeFor[createThingRequest](),
	"CreateThingGroup":  reflect.TypeFor[createThingGroupRequest](),
}

// BodyMembers returns the top-level members of an operation's request
// body (nil for an operation it does not know). The API ignores members it
// does not know, as AWS does; a file that gives such bodies (the broker's
// preload) uses the list to refuse a misspelt one instead.
func BodyMembers(operation string) []string {
	t := bodies[operation]
	if t == nil {
		return nil
	}
	var names []string
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}
