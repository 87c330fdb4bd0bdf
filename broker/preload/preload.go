// Package preload reads a preload file, the things, thing groups, job
// templates and jobs a broker creates at start, and loads it through the
// control-plane API's own handler, so that every item is decoded,
// validated and stored exactly as the same CreateThing, CreateThingGroup,
// CreateJobTemplate or CreateJob call over HTTP would be.
//
// The file is YAML or JSON. Each item is the request body of its create
// call with the name that would be in the path beside it; a few keys
// that no single call takes are added: a group's things, and a job's
// executions, the states its executions start in:
//
//	things:
//	  - thingName: pump-1
//	    attributePayload: {attributes: {model: p100}}
//	thingGroups:
//	  - thingGroupName: pumps
//	    things: [pump-1]
//	jobs:
//	  - jobId: fw-2
//	    targets: [arn:aws:iot:us-east-1:123456789012:thinggroup/pumps]
//	    document: {operation: update, version: "2.0"}
//	    executions:
//	      - thingName: pump-1
//	        status: IN_PROGRESS
//	        versionNumber: 3
//	        statusDetails: {step: download}
//
// A document may be a mapping, which is written as its JSON. An execution
// state is reached the way a device would reach it, through the store's
// UpdateJobExecution (and CancelJobExecution for CANCELED): IN_PROGRESS at
// version 3 is one update to IN_PROGRESS and one more with the same
// status, each bumping the version by one.
package preload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/broker/controlplane"
	"github.com/jobsbroker/jobsbroker/store"
)

// A section is one list of the file: what its items create.
type section struct {
	key       string // the file's key
	idKey     string // the item key that names it (in the call's path)
	operation string // the control-plane operation
	extras    []string
	path      func(id string) (method, path string)
}

// sections are in load order: a group's things, a job's targets and
// template exist before what names them.
var sections = []section{
	{key: "things", idKey: "thingName", operation: "CreateThing",
		path: func(id string) (string, string) { return http.MethodPost, "/things/" + url.PathEscape(id) }},
	{key: "thingGroups", idKey: "thingGroupName", operation: "CreateThingGroup", extras: []string{"things"},
		path: func(id string) (string, string) { return http.MethodPost, "/thing-groups/" + url.PathEscape(id) }},
	{key: "jobTemplates", idKey: "jobTemplateId", operation: "CreateJobTemplate",
		path: func(id string) (string, string) { return http.MethodPut, "/job-templates/" + url.PathEscape(id) }},
	{key: "jobs", idKey: "jobId", operation: "CreateJob", extras: []string{"executions"},
		path: func(id string) (string, string) { return http.MethodPut, "/jobs/" + url.PathEscape(id) }},
}

// Plan is a parsed preload file.
type Plan struct {
	name  string
	items []*item
}

// item is one thing, group, template or job of the file.
type item struct {
	sec        *section
	index      int
	id         string
	node       *yaml.Node
	body       []byte
	things     []string // a group's
	executions []execution
}

// execution is the state one execution of a job starts in.
type execution struct {
	line    int
	thing   string
	status  store.ExecutionStatus
	version int64 // 0: the least the status allows
	details map[string]string
}

// Error is a problem with one place of a preload file.
type Error struct {
	File  string
	Line  int
	Where string // jobs[2] (fw-1).targets
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("preload file %s: line %d: %s: %v", e.File, e.Line, e.Where, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ReadFile reads and parses a preload file.
func ReadFile(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("preload file: %w", err)
	}
	return Parse(data, path)
}

// Parse reads a preload file's contents; name names it in errors. It
// checks the file's shape and every key; what only the API can tell (a
// description too long, a group that does not exist) Load finds.
func Parse(data []byte, name string) (*Plan, error) {
	p := &Plan{name: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("preload file %s: %w", name, err)
	}
	if len(doc.Content) == 0 {
		return p, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: name, Line: root.Line, Where: "the file", Err: errors.New("must be a mapping of things, thingGroups, jobTemplates and jobs")}
	}
	bySection := map[string]*yaml.Node{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		i := slices.IndexFunc(sections, func(s section) bool { return s.key == k.Value })
		if i < 0 {
			return nil, &Error{File: name, Line: k.Line, Where: k.Value, Err: errors.New("unknown key: the file has things, thingGroups, jobTemplates and jobs")}
		}
		if v.Kind != yaml.SequenceNode {
			return nil, &Error{File: name, Line: v.Line, Where: k.Value, Err: errors.New("must be a list")}
		}
		bySection[k.Value] = v
	}
	for s := range sections {
		sec := &sections[s]
		list := bySection[sec.key]
		if list == nil {
			continue
		}
		seen := map[string]int{}
		for i, n := range list.Content {
			it, err := p.parseItem(sec, i, n)
			if err != nil {
				return nil, err
			}
			if line, dup := seen[it.id]; dup {
				return nil, p.fail(it, sec.idKey, fmt.Errorf("%q is also the item on line %d", it.id, line))
			}
			seen[it.id] = n.Line
			p.items = append(p.items, it)
		}
	}
	return p, nil
}

// parseItem checks one item's keys and builds its API body.
func (p *Plan) parseItem(sec *section, index int, n *yaml.Node) (*item, error) {
	it := &item{sec: sec, index: index, node: n}
	if n.Kind != yaml.MappingNode {
		return nil, p.fail(it, "", errors.New("must be a mapping"))
	}
	members := controlplane.BodyMembers(sec.operation)
	body := map[string]any{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch {
		case k.Value == sec.idKey:
			err = v.Decode(&it.id)
		case k.Value == "things" && slices.Contains(sec.extras, "things"):
			err = v.Decode(&it.things)
		case k.Value == "executions" && slices.Contains(sec.extras, "executions"):
			it.executions, err = p.parseExecutions(it, v)
		case slices.Contains(members, k.Value):
			var val any
			if err = v.Decode(&val); err == nil {
				body[k.Value] = documentText(k.Value, v, val)
			}
		default:
			err = fmt.Errorf("unknown key: %s takes %s", sec.operation, strings.Join(append(append([]string{sec.idKey}, members...), sec.extras...), ", "))
		}
		if err != nil {
			var ie *Error
			if errors.As(err, &ie) {
				return nil, err
			}
			return nil, &Error{File: p.name, Line: k.Line, Where: p.where(it, k.Value), Err: yamlProblem(err)}
		}
	}
	if it.id == "" {
		return nil, p.fail(it, "", fmt.Errorf("%s is required", sec.idKey))
	}
	var err error
	if it.body, err = json.Marshal(body); err != nil {
		return nil, p.fail(it, "", fmt.Errorf("cannot be written as JSON: %w", err))
	}
	return it, nil
}

// documentText writes a document given as a mapping or list as its JSON
// text, the string CreateJob and CreateJobTemplate take.
func documentText(key string, n *yaml.Node, val any) any {
	if key != "document" || n.Kind == yaml.ScalarNode {
		return val
	}
	b, err := json.Marshal(val)
	if err != nil {
		return val // the API refuses it
	}
	return string(b)
}

// yamlProblem drops the "yaml: line N:" prefix of a decoding error; the
// caller gives the line.
func yamlProblem(err error) error {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, ": line "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			return errors.New(after)
		}
	}
	return err
}

// startStatuses are the states a preloaded execution may start in.
var startStatuses = []store.ExecutionStatus{store.StatusQueued, store.StatusInProgress,
	store.StatusSucceeded, store.StatusFailed, store.StatusRejected, store.StatusCanceled}

func (p *Plan) parseExecutions(it *item, list *yaml.Node) ([]execution, error) {
	if list.Kind != yaml.SequenceNode {
		return nil, errors.New("must be a list of thingName, status, versionNumber, statusDetails")
	}
	var out []execution
	for i, n := range list.Content {
		where := fmt.Sprintf("%s.executions[%d]", p.where(it, ""), i)
		bad := func(line int, err error) error {
			return &Error{File: p.name, Line: line, Where: where, Err: err}
		}
		var e struct {
			ThingName     string            `yaml:"thingName"`
			Status        string            `yaml:"status"`
			VersionNumber int64             `yaml:"versionNumber"`
			StatusDetails map[string]string `yaml:"statusDetails"`
		}
		if n.Kind != yaml.MappingNode {
			return nil, bad(n.Line, errors.New("must be a mapping of thingName, status, versionNumber, statusDetails"))
		}
		for j := 0; j+1 < len(n.Content); j += 2 {
			k := n.Content[j]
			if !slices.Contains([]string{"thingName", "status", "versionNumber", "statusDetails"}, k.Value) {
				return nil, bad(k.Line, fmt.Errorf("unknown key %q: an execution has thingName, status, versionNumber, statusDetails", k.Value))
			}
		}
		if err := n.Decode(&e); err != nil {
			return nil, bad(n.Line, yamlProblem(err))
		}
		x := execution{line: n.Line, thing: e.ThingName, status: store.ExecutionStatus(e.Status),
			version: e.VersionNumber, details: e.StatusDetails}
		if err := store.ValidateThingName(x.thing); err != nil {
			return nil, bad(keyLine(n, "thingName"), fmt.Errorf("thingName: %v", err))
		}
		if !slices.Contains(startStatuses, x.status) {
			return nil, bad(keyLine(n, "status"), fmt.Errorf("status %q: an execution may start QUEUED, IN_PROGRESS, SUCCEEDED, FAILED, REJECTED or CANCELED", e.Status))
		}
		switch {
		case x.status == store.StatusQueued && x.version > 1:
			return nil, bad(keyLine(n, "versionNumber"), errors.New("versionNumber: a QUEUED execution is at version 1"))
		case x.status != store.StatusQueued && x.version == 1:
			return nil, bad(keyLine(n, "versionNumber"), fmt.Errorf("versionNumber: an execution that is %s is at version 2 or more", x.status))
		case x.version < 0:
			return nil, bad(keyLine(n, "versionNumber"), errors.New("versionNumber must be positive"))
		}
		if err := store.ValidateStatusDetails(x.details); err != nil {
			return nil, bad(keyLine(n, "statusDetails"), err)
		}
		if slices.ContainsFunc(out, func(o execution) bool { return o.thing == x.thing }) {
			return nil, bad(n.Line, fmt.Errorf("thing %s has a state already", x.thing))
		}
		out = append(out, x)
	}
	return out, nil
}

// keyLine returns the line of key in mapping n, or n's own line.
func keyLine(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return n.Line
}

// where names an item (and one of its keys) in errors.
func (p *Plan) where(it *item, key string) string {
	w := fmt.Sprintf("%s[%d]", it.sec.key, it.index)
	if it.id != "" {
		w += " (" + it.id + ")"
	}
	if key != "" {
		w += "." + key
	}
	return w
}

func (p *Plan) fail(it *item, key string, err error) *Error {
	line := it.node.Line
	if key != "" {
		line = keyLine(it.node, key)
	}
	return &Error{File: p.name, Line: line, Where: p.where(it, key), Err: err}
}

// Counts says how many items of each section the plan holds.
func (p *Plan) Counts() map[string]int {
	counts := map[string]int{}
	for _, it := range p.items {
		counts[it.sec.key]++
	}
	return counts
}

// Empty reports whether the plan creates nothing.
func (p *Plan) Empty() bool { return p == nil || len(p.items) == 0 }

// Load creates the plan's items through api, the control plane's handler,
// in order (things, groups and their members, templates, jobs), then
// brings the executions the jobs name to their states through st. It
// stops at the first item the API refuses, naming its line and, when the
// API's message names one of the item's keys, that key.
func (p *Plan) Load(ctx context.Context, api http.Handler, st store.Store) error {
	for _, it := range p.items {
		method, path := it.sec.path(it.id)
		if _, e := awsapi.Call(ctx, api, method, path, it.body); e != nil {
			return p.apiError(it, e)
		}
		for _, thing := range it.things {
			body, _ := json.Marshal(map[string]string{"thingGroupName": it.id, "thingName": thing})
			if _, e := awsapi.Call(ctx, api, http.MethodPut, "/thing-groups/addThingToThingGroup", body); e != nil {
				return p.fail(it, "things", fmt.Errorf("add %s: %s: %s", thing, e.Type, e.Message))
			}
		}
	}
	for _, it := range p.items {
		for _, x := range it.executions {
			if err := reach(ctx, st, it.id, x); err != nil {
				return &Error{File: p.name, Line: x.line, Where: p.where(it, "executions"), Err: err}
			}
		}
	}
	return nil
}

// apiError names the key of the item the API's message is about, when
// it names one.
func (p *Plan) apiError(it *item, e *awsapi.Error) error {
	key := ""
	for i := 0; i+1 < len(it.node.Content); i += 2 {
		if k := it.node.Content[i].Value; strings.Contains(e.Message, k) && len(k) > len(key) {
			key = k
		}
	}
	return p.fail(it, key, fmt.Errorf("%s: %s", e.Type, e.Message))
}

// rolloutWait bounds how long Load waits for a job's execution to appear
// (a job's first things are queued as it is created; a rollout rate or a
// schedule can hold them back).
const rolloutWait = 5 * time.Second

// reach brings thing's execution of job to x's state through the
// operations a device uses, each bumping the version by one.
func reach(ctx context.Context, st store.Store, job string, x execution) error {
	cur, err := awaitExecution(ctx, st, job, x.thing)
	if err != nil {
		return err
	}
	target := x.version
	if target == 0 {
		target = 2
		if x.status == store.StatusQueued {
			target = 1
		}
	}
	update := func(status store.ExecutionStatus) error {
		v := cur.VersionNumber
		out, err := st.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: x.thing, JobID: job,
			Status: status, StatusDetails: x.details, ExpectedVersion: &v})
		if err != nil {
			return fmt.Errorf("update to %s at version %d: %w", status, v+1, err)
		}
		cur = out.Execution
		return nil
	}
	if x.status != store.StatusQueued {
		if cur.Status != store.StatusQueued {
			return fmt.Errorf("the execution on %s is %s already", x.thing, cur.Status)
		}
		last := target // IN_PROGRESS up to the target, or to the version before the last move
		if x.status != store.StatusInProgress {
			last = target - 1
		}
		for cur.VersionNumber < last {
			if err := update(store.StatusInProgress); err != nil {
				return err
			}
		}
		switch x.status {
		case store.StatusInProgress:
		case store.StatusCanceled:
			v := cur.VersionNumber
			if err := st.CancelJobExecution(ctx, &store.CancelExecutionInput{JobID: job, ThingName: x.thing,
				Force: cur.Status == store.StatusInProgress, ExpectedVersion: &v, StatusDetails: x.details}); err != nil {
				return fmt.Errorf("cancel at version %d: %w", v, err)
			}
		default:
			if err := update(x.status); err != nil {
				return err
			}
		}
	}
	out, err := st.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: x.thing, JobID: job})
	if err != nil {
		return err
	}
	if e := out.Execution; e.Status != x.status || e.VersionNumber != target {
		return fmt.Errorf("the execution on %s reached %s at version %d, not %s at version %d", x.thing, e.Status, e.VersionNumber, x.status, target)
	}
	return nil
}

// awaitExecution returns thing's execution of job once it exists.
func awaitExecution(ctx context.Context, st store.Store, job, thing string) (*store.Execution, error) {
	deadline := time.Now().Add(rolloutWait)
	for {
		out, err := st.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: thing, JobID: job})
		switch {
		case err == nil && out.Execution != nil:
			return out.Execution, nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return nil, err
		case time.Now().After(deadline):
			return nil, fmt.Errorf("thing %s has no execution of job %s after %v: is it one of the job's targets (a thing, or in a group the job targets), not held back by a rollout rate or a schedule?", thing, job, rolloutWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
