package store

import "time"

// Thing is a registered thing. Jobs do not need things to be registered;
// thing groups do, as on AWS.
type Thing struct {
	ThingName     string            `json:"thingName"`
	ThingID       string            `json:"thingId"`
	ThingTypeName string            `json:"thingTypeName,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
	Version       int64             `json:"version"`
	CreatedAt     time.Time         `json:"createdAt"`
}

// ThingGroup is a static thing group. A job that targets a group targets
// the things of its child groups too.
type ThingGroup struct {
	Name        string            `json:"name"`
	ID          string            `json:"id"`
	ParentName  string            `json:"parentName,omitempty"`
	Description string            `json:"description,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	Version     int64             `json:"version"`
	CreatedAt   time.Time         `json:"createdAt"`
	// Ancestors lists the group's parents, root first; filled in on reads.
	Ancestors []string `json:"-"`
}

// MaxGroupDepth is how deep a group hierarchy may go (AWS: 7 levels).
const MaxGroupDepth = 7

// MaxGroupsPerThing is how many groups one thing may belong to directly.
const MaxGroupsPerThing = 10

// CreateThingInput is a CreateThing request.
type CreateThingInput struct {
	ThingName     string
	ThingTypeName string
	Attributes    map[string]string
}

// DeleteThingInput is a DeleteThing request.
type DeleteThingInput struct {
	ThingName       string
	ExpectedVersion *int64
}

// CreateThingGroupInput is a CreateThingGroup request.
type CreateThingGroupInput struct {
	Name        string
	ParentName  string
	Description string
	Attributes  map[string]string
}

// DeleteThingGroupInput is a DeleteThingGroup request.
type DeleteThingGroupInput struct {
	Name            string
	ExpectedVersion *int64
}

// PageInput pages a list operation.
type PageInput struct {
	MaxResults int
	NextToken  string
}

// ListThingGroupsInput filters ListThingGroups.
type ListThingGroupsInput struct {
	PageInput
	ParentGroup      string // only children of this group
	NamePrefixFilter string
	Recursive        bool // with ParentGroup: all descendants
}

// ListThingsInGroupInput is a ListThingsInThingGroup request.
type ListThingsInGroupInput struct {
	PageInput
	ThingGroupName string
	Recursive      bool // also the things of child groups
}

// MembershipInput names a thing and a group.
type MembershipInput struct {
	ThingGroupName string
	ThingName      string
}

// ThingsPage is a page of things.
type ThingsPage struct {
	Things    []*Thing
	NextToken string
}

// GroupsPage is a page of thing groups.
type GroupsPage struct {
	Groups    []*ThingGroup
	NextToken string
}

// NamesPage is a page of names.
type NamesPage struct {
	Names     []string
	NextToken string
}
