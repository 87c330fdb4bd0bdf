package controlplane

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/store"
)

// The thing registry and static thing groups: CreateThing, DescribeThing,
// DeleteThing, ListThings, CreateThingGroup, DescribeThingGroup,
// DeleteThingGroup, ListThingGroups, AddThingToThingGroup,
// RemoveThingFromThingGroup, ListThingsInThingGroup and
// ListThingGroupsForThing, in the shape of the AWS IoT API. Jobs target
// groups by ARN (PROTOCOL.md §11.3).

// The exception names of the control plane.
const (
	exInternal     = "InternalFailureException"
	exInvalid      = "InvalidRequestException"
	exNotFound     = "ResourceNotFoundException"
	exExists       = "ResourceAlreadyExistsException"
	exThrottling   = "ThrottlingException"
	exUnavailable  = "ServiceUnavailableException"
	exUnauthorized = "UnauthorizedException"
	exVersion      = "VersionConflictException"
	exLimit        = "LimitExceededException"
	exConflict     = "ConflictException"
)

// exceptions is the set of exceptions an operation's model declares. An
// SDK turns any other code into a generic error that callers cannot match,
// so an operation never returns one (see restrict).
type exceptions map[string]bool

func declares(names ...string) exceptions {
	set := make(exceptions, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set
}

// The exceptions of each operation, as the AWS IoT model (2015-05-28)
// declares them.
var (
	createThingErrors      = declares(exInternal, exInvalid, exExists, exNotFound, exUnavailable, exThrottling, exUnauthorized)
	describeThingErrors    = declares(exInternal, exInvalid, exNotFound, exUnavailable, exThrottling, exUnauthorized)
	deleteThingErrors      = declares(exInternal, exInvalid, exNotFound, exUnavailable, exThrottling, exUnauthorized, exVersion)
	listThingsErrors       = declares(exInternal, exInvalid, exUnavailable, exThrottling, exUnauthorized)
	createGroupErrors      = declares(exInternal, exInvalid, exExists, exThrottling)
	deleteGroupErrors      = declares(exInternal, exInvalid, exThrottling, exVersion)
	groupErrors            = declares(exInternal, exInvalid, exNotFound, exThrottling) // the other group operations
	updateJobErrors        = declares(exInvalid, exNotFound, exUnavailable, exThrottling)
	associateTargetsErrors = declares(exInvalid, exLimit, exNotFound, exUnavailable, exThrottling)
	createTemplateErrors   = declares(exConflict, exInternal, exInvalid, exLimit, exNotFound, exThrottling)
	templateErrors         = declares(exInternal, exInvalid, exNotFound, exThrottling) // describe, delete
	listTemplatesErrors    = declares(exInternal, exInvalid, exThrottling)
	updateEventsErrors     = declares(exInternal, exInvalid, exThrottling)
	describeEventsErrors   = declares(exInternal, exThrottling)
)

// restrict maps *err to an exception the operation declares: a client
// error it does not declare becomes an InvalidRequestException (the
// request cannot be served as asked), a server error becomes whichever of
// ServiceUnavailableException and InternalFailureException it declares.
// Operations defer it on their named error result.
func restrict(err *error, declared exceptions) {
	if *err == nil {
		return
	}
	e := errorFor(*err)
	if declared[e.Type] {
		*err = e
		return
	}
	switch {
	case e.Status >= 500 && declared[exUnavailable]:
		*err = awsapi.Errorf(http.StatusServiceUnavailable, exUnavailable, e.Message)
	case e.Status >= 500:
		*err = awsapi.Errorf(http.StatusInternalServerError, exInternal, e.Message)
	case declared[exInvalid]:
		*err = awsapi.Errorf(http.StatusBadRequest, exInvalid, e.Message)
	default:
		*err = awsapi.Errorf(http.StatusInternalServerError, exInternal, e.Message)
	}
}

// alreadyExists is a ResourceAlreadyExistsException naming the resource.
func alreadyExists(err error, id, arn string) error {
	e := errorFor(err)
	return &awsapi.Error{Status: e.Status, Type: e.Type, Message: e.Message,
		Extra: map[string]any{"resourceId": id, "resourceArn": arn}}
}

func (a *API) arn(resource string) string {
	return "arn:aws:iot:" + a.opts.Region + ":" + a.opts.Account + ":" + resource
}

func (a *API) thingGroupArn(name string) string { return a.arn("thinggroup/" + name) }

// nameFromARN returns the name in a thing or thing group ARN, checking
// that the ARN is of that kind; field names the request member.
func nameFromARN(arn string, kind store.TargetKind, field string) (string, error) {
	what := "thing"
	if kind == store.TargetThingGroup {
		what = "thing group"
	}
	k, name, err := store.ParseTargetARN(arn)
	if err != nil || k != kind {
		return "", invalid(field + " " + strconv.Quote(arn) + " is not an AWS IoT " + what + " ARN")
	}
	return name, nil
}

// nameOrARN resolves a request that names a resource either by name or by
// ARN (or both, when they agree).
func nameOrARN(name, arn *string, kind store.TargetKind, nameField, arnField string) (string, error) {
	n := deref(name)
	if a := deref(arn); a != "" {
		fromARN, err := nameFromARN(a, kind, arnField)
		if err != nil {
			return "", err
		}
		if n != "" && n != fromARN {
			return "", invalid(nameField + " " + n + " and " + arnField + " " + a + " name different resources")
		}
		n = fromARN
	}
	if n == "" {
		return "", invalid(nameField + " or " + arnField + " is required")
	}
	return n, nil
}

// pageInput reads maxResults and nextToken.
func pageInput(r *http.Request) (store.PageInput, error) {
	n, err := maxResults(r)
	return store.PageInput{MaxResults: n, NextToken: r.URL.Query().Get("nextToken")}, err
}

// expectedVersion reads the expectedVersion query parameter.
func expectedVersion(r *http.Request) (*int64, error) {
	v, e := awsapi.QueryInt(r, "expectedVersion")
	if e != nil {
		return nil, e
	}
	if v != nil && *v < 0 {
		return nil, invalid("expectedVersion must not be negative")
	}
	return v, nil
}

func pathThing(r *http.Request) (string, error) {
	name := r.PathValue("thingName")
	return name, store.ValidateThingName(name)
}

func pathGroup(r *http.Request) (string, error) {
	name := r.PathValue("thingGroupName")
	return name, store.ValidateThingGroupName(name)
}

// Things.

func (a *API) createThing(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, createThingErrors)
	name, err := pathThing(r)
	if err != nil {
		return err
	}
	var req createThingRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	if b := deref(req.BillingGroupName); b != "" {
		return awsapi.Errorf(http.StatusNotFound, exNotFound, "billing group "+b+" does not exist: this broker has no billing groups")
	}
	in := &store.CreateThingInput{ThingName: name, ThingTypeName: deref(req.ThingTypeName)}
	if req.AttributePayload != nil {
		in.Attributes = req.AttributePayload.Attributes
	}
	thing, err := a.opts.Store.CreateThing(ctx, in)
	if errors.Is(err, store.ErrAlreadyExists) {
		id := name
		if t, derr := a.opts.Store.DescribeThing(ctx, name); derr == nil {
			id = t.ThingID
		}
		return alreadyExists(err, id, a.thingArn(name))
	}
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, wireThingRef{ThingName: thing.ThingName, ThingArn: a.thingArn(thing.ThingName), ThingID: thing.ThingID})
	return nil
}

func (a *API) describeThing(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, describeThingErrors)
	name, err := pathThing(r)
	if err != nil {
		return err
	}
	t, err := a.opts.Store.DescribeThing(ctx, name)
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, wireThing{
		DefaultClientID: t.ThingName,
		ThingName:       t.ThingName,
		ThingID:         t.ThingID,
		ThingArn:        a.thingArn(t.ThingName),
		ThingTypeName:   t.ThingTypeName,
		Attributes:      attributes(t.Attributes),
		Version:         t.Version,
	})
	return nil
}

// deleteThing deletes a thing; deleting one that does not exist succeeds,
// as AWS documents for DeleteThing.
func (a *API) deleteThing(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, deleteThingErrors)
	name, err := pathThing(r)
	if err != nil {
		return err
	}
	v, err := expectedVersion(r)
	if err != nil {
		return err
	}
	err = a.opts.Store.DeleteThing(ctx, &store.DeleteThingInput{ThingName: name, ExpectedVersion: v})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	awsapi.WriteEmpty(w)
	return nil
}

// maxFilteredPages bounds the store pages one filtered ListThings call
// reads; the caller gets a shorter page and a nextToken after that.
const maxFilteredPages = 20

// defaultListThings is the page size of a filtered ListThings call that
// gives no maxResults.
const defaultListThings = 50

// listThings lists registered things. The thingTypeName and attribute
// filters are applied here, reading further store pages until the page is
// full, the registry ends or maxFilteredPages were read.
func (a *API) listThings(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, listThingsErrors)
	page, err := pageInput(r)
	if err != nil {
		return err
	}
	f, err := thingFilterFrom(r)
	if err != nil {
		return err
	}
	out := struct {
		Things    []wireThingAttribute `json:"things"`
		NextToken string               `json:"nextToken,omitempty"`
	}{Things: []wireThingAttribute{}}
	want := page.MaxResults
	if f.any() && want == 0 {
		want = defaultListThings
	}
	for i := 0; ; i++ {
		in := page
		if f.any() {
			in.MaxResults = want - len(out.Things)
		}
		res, err := a.opts.Store.ListThings(ctx, &in)
		if err != nil {
			return err
		}
		for _, t := range res.Things {
			if f.match(t) {
				out.Things = append(out.Things, wireThingAttribute{
					ThingName: t.ThingName, ThingTypeName: t.ThingTypeName, ThingArn: a.thingArn(t.ThingName),
					Attributes: attributes(t.Attributes), Version: t.Version,
				})
			}
		}
		out.NextToken = res.NextToken
		if !f.any() || res.NextToken == "" || len(out.Things) >= want || i+1 == maxFilteredPages {
			break
		}
		page.NextToken = res.NextToken
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// thingFilter holds ListThings' filters.
type thingFilter struct {
	typeName, attrName, attrValue string
	prefix                        bool
}

func thingFilterFrom(r *http.Request) (thingFilter, error) {
	q := r.URL.Query()
	f := thingFilter{typeName: q.Get("thingTypeName"), attrName: q.Get("attributeName"), attrValue: q.Get("attributeValue")}
	var e *awsapi.Error
	if f.prefix, e = awsapi.QueryBool(r, "usePrefixAttributeValue"); e != nil {
		return f, e
	}
	if f.attrValue != "" && f.attrName == "" {
		return f, invalid("attributeValue needs attributeName")
	}
	return f, nil
}

func (f thingFilter) any() bool { return f.typeName != "" || f.attrName != "" }

func (f thingFilter) match(t *store.Thing) bool {
	if f.typeName != "" && t.ThingTypeName != f.typeName {
		return false
	}
	if f.attrName == "" {
		return true
	}
	v, ok := t.Attributes[f.attrName]
	switch {
	case !ok:
		return false
	case f.attrValue == "":
		return true
	case f.prefix:
		return strings.HasPrefix(v, f.attrValue)
	}
	return v == f.attrValue
}

func attributes(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Thing groups.

func (a *API) createThingGroup(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, createGroupErrors)
	name, err := pathGroup(r)
	if err != nil {
		return err
	}
	var req createThingGroupRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	in := &store.CreateThingGroupInput{Name: name, ParentName: deref(req.ParentGroupName)}
	if in.ParentName != "" {
		if err := store.ValidateThingGroupName(in.ParentName); err != nil {
			return invalid("parentGroupName must be 1-128 characters from [a-zA-Z0-9:_-]")
		}
	}
	if p := req.ThingGroupProperties; p != nil {
		in.Description = p.ThingGroupDescription
		if p.AttributePayload != nil {
			in.Attributes = p.AttributePayload.Attributes
		}
	}
	g, err := a.opts.Store.CreateThingGroup(ctx, in)
	if errors.Is(err, store.ErrAlreadyExists) {
		id := name
		if old, derr := a.opts.Store.DescribeThingGroup(ctx, name); derr == nil {
			id = old.ID
		}
		return alreadyExists(err, id, a.thingGroupArn(name))
	}
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, wireThingGroupRef{ThingGroupName: g.Name, ThingGroupArn: a.thingGroupArn(g.Name), ThingGroupID: g.ID})
	return nil
}

func (a *API) describeThingGroup(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, groupErrors)
	name, err := pathGroup(r)
	if err != nil {
		return err
	}
	g, err := a.opts.Store.DescribeThingGroup(ctx, name)
	if err != nil {
		return err
	}
	out := wireThingGroup{
		ThingGroupName: g.Name,
		ThingGroupID:   g.ID,
		ThingGroupArn:  a.thingGroupArn(g.Name),
		Version:        g.Version,
		ThingGroupMetadata: wireThingGroupMetadata{
			ParentGroupName:         g.ParentName,
			RootToParentThingGroups: a.groupRefs(g.Ancestors),
			CreationDate:            awsapi.Epoch(g.CreatedAt),
		},
		Status: "ACTIVE",
	}
	if g.Description != "" {
		out.ThingGroupProperties.ThingGroupDescription = g.Description
	}
	if len(g.Attributes) > 0 {
		out.ThingGroupProperties.AttributePayload = &wireAttributePayload{Attributes: g.Attributes}
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) groupRefs(names []string) []wireGroupNameAndArn {
	if len(names) == 0 {
		return nil
	}
	out := make([]wireGroupNameAndArn, len(names))
	for i, n := range names {
		out[i] = wireGroupNameAndArn{GroupName: n, GroupArn: a.thingGroupArn(n)}
	}
	return out
}

// deleteThingGroup deletes a group; deleting one that does not exist
// succeeds (the operation declares no ResourceNotFoundException).
func (a *API) deleteThingGroup(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, deleteGroupErrors)
	name, err := pathGroup(r)
	if err != nil {
		return err
	}
	v, err := expectedVersion(r)
	if err != nil {
		return err
	}
	err = a.opts.Store.DeleteThingGroup(ctx, &store.DeleteThingGroupInput{Name: name, ExpectedVersion: v})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	awsapi.WriteEmpty(w)
	return nil
}

func (a *API) listThingGroups(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, groupErrors)
	page, err := pageInput(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	in := &store.ListThingGroupsInput{PageInput: page, ParentGroup: q.Get("parentGroup"), NamePrefixFilter: q.Get("namePrefixFilter")}
	if in.ParentGroup != "" {
		if err := store.ValidateThingGroupName(in.ParentGroup); err != nil {
			return invalid("parentGroup must be 1-128 characters from [a-zA-Z0-9:_-]")
		}
	}
	if in.NamePrefixFilter != "" && store.ValidateThingGroupName(in.NamePrefixFilter) != nil {
		return invalid("namePrefixFilter must be 1-128 characters from [a-zA-Z0-9:_-]")
	}
	var e *awsapi.Error
	if in.Recursive, e = awsapi.QueryBool(r, "recursive"); e != nil {
		return e
	}
	res, err := a.opts.Store.ListThingGroups(ctx, in)
	if err != nil {
		return err
	}
	a.writeGroups(w, res)
	return nil
}

func (a *API) listThingGroupsForThing(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, groupErrors)
	name, err := pathThing(r)
	if err != nil {
		return err
	}
	page, err := pageInput(r)
	if err != nil {
		return err
	}
	res, err := a.opts.Store.ListThingGroupsForThing(ctx, name, &page)
	if err != nil {
		return err
	}
	a.writeGroups(w, res)
	return nil
}

func (a *API) writeGroups(w http.ResponseWriter, res *store.GroupsPage) {
	out := struct {
		ThingGroups []wireGroupNameAndArn `json:"thingGroups"`
		NextToken   string                `json:"nextToken,omitempty"`
	}{ThingGroups: []wireGroupNameAndArn{}, NextToken: res.NextToken}
	for _, g := range res.Groups {
		out.ThingGroups = append(out.ThingGroups, wireGroupNameAndArn{GroupName: g.Name, GroupArn: a.thingGroupArn(g.Name)})
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
}

func (a *API) listThingsInThingGroup(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, groupErrors)
	name, err := pathGroup(r)
	if err != nil {
		return err
	}
	page, err := pageInput(r)
	if err != nil {
		return err
	}
	in := &store.ListThingsInGroupInput{PageInput: page, ThingGroupName: name}
	var e *awsapi.Error
	if in.Recursive, e = awsapi.QueryBool(r, "recursive"); e != nil {
		return e
	}
	res, err := a.opts.Store.ListThingsInThingGroup(ctx, in)
	if err != nil {
		return err
	}
	out := struct {
		Things    []string `json:"things"`
		NextToken string   `json:"nextToken,omitempty"`
	}{Things: res.Names, NextToken: res.NextToken}
	if out.Things == nil {
		out.Things = []string{}
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// Group membership.

func (a *API) addThingToThingGroup(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, groupErrors)
	in, err := membership(r)
	if err != nil {
		return err
	}
	if err := a.opts.Store.AddThingToThingGroup(ctx, in); err != nil {
		return err
	}
	awsapi.WriteEmpty(w)
	return nil
}

func (a *API) removeThingFromThingGroup(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, groupErrors)
	in, err := membership(r)
	if err != nil {
		return err
	}
	if err := a.opts.Store.RemoveThingFromThingGroup(ctx, in); err != nil {
		return err
	}
	awsapi.WriteEmpty(w)
	return nil
}

// membership reads the body of AddThingToThingGroup and
// RemoveThingFromThingGroup: each of the group and the thing by name or
// by ARN.
func membership(r *http.Request) (*store.MembershipInput, error) {
	var req membershipRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return nil, e
	}
	group, err := nameOrARN(req.ThingGroupName, req.ThingGroupArn, store.TargetThingGroup, "thingGroupName", "thingGroupArn")
	if err != nil {
		return nil, err
	}
	if err := store.ValidateThingGroupName(group); err != nil {
		return nil, err
	}
	thing, err := nameOrARN(req.ThingName, req.ThingArn, store.TargetThing, "thingName", "thingArn")
	if err != nil {
		return nil, err
	}
	if err := store.ValidateThingName(thing); err != nil {
		return nil, err
	}
	return &store.MembershipInput{ThingGroupName: group, ThingName: thing}, nil
}
