package store

import (
	"strings"
)

// TargetKind says whether a job target names a thing or a thing group.
type TargetKind uint8

// The kinds of job targets.
const (
	TargetThing TargetKind = iota + 1
	TargetThingGroup
)

// ParseTargetARN splits a job target ARN,
// arn:{partition}:iot:{region}:{account}:thing/{name} or
// ...:thinggroup/{name}. Any partition, region and account are accepted.
func ParseTargetARN(arn string) (TargetKind, string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "iot" || parts[3] == "" || parts[4] == "" {
		return 0, "", Errorf(ErrInvalidRequest, "target %q is not an AWS IoT thing or thing group ARN", arn)
	}
	resource, name, ok := strings.Cut(parts[5], "/")
	if !ok {
		return 0, "", Errorf(ErrInvalidRequest, "target %q is not an AWS IoT thing or thing group ARN", arn)
	}
	switch resource {
	case "thing":
		if err := ValidateThingName(name); err != nil {
			return 0, "", Errorf(ErrInvalidRequest, "target %q: %s", arn, err)
		}
		return TargetThing, name, nil
	case "thinggroup":
		if err := ValidateThingGroupName(name); err != nil {
			return 0, "", Errorf(ErrInvalidRequest, "target %q: %s", arn, err)
		}
		return TargetThingGroup, name, nil
	}
	return 0, "", Errorf(ErrInvalidRequest, "target %q is not an AWS IoT thing or thing group ARN", arn)
}
