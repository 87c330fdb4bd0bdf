package controlplane

import (
	"context"
	"net/http"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/store"
)

// The AWS IoT command operations (COMMANDS.md §2): commands, and the
// executions StartCommandExecution (on the jobs data plane) creates.

// commandRoutes adds the eight command operations.
func (a *API) commandRoutes() {
	h := func(name, pattern string, op awsapi.Operation) {
		a.rt.Handle(name, pattern, func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
			cs, ok := a.opts.Store.(store.CommandStore)
			if !ok {
				return awsapi.Errorf(http.StatusBadRequest, "ValidationException", "this broker's store does not keep commands")
			}
			if err := op(context.WithValue(ctx, commandStoreKey{}, cs), w, r); err != nil {
				return awsapi.CommandError(err, http.StatusBadRequest)
			}
			return nil
		})
	}
	h("CreateCommand", "PUT /commands/{commandId}", a.createCommand)
	h("UpdateCommand", "PATCH /commands/{commandId}", a.updateCommand)
	h("GetCommand", "GET /commands/{commandId}", a.getCommand)
	h("ListCommands", "GET /commands", a.listCommands)
	h("DeleteCommand", "DELETE /commands/{commandId}", a.deleteCommand)
	h("GetCommandExecution", "GET /command-executions/{executionId}", a.getCommandExecution)
	h("ListCommandExecutions", "POST /command-executions", a.listCommandExecutions)
	h("DeleteCommandExecution", "DELETE /command-executions/{executionId}", a.deleteCommandExecution)
}

type commandStoreKey struct{}

func commandStore(ctx context.Context) store.CommandStore {
	return ctx.Value(commandStoreKey{}).(store.CommandStore)
}

func (a *API) commandArn(id string) string { return a.arn("command/" + id) }

// CommandTargetArn returns the ARN of an execution's target.
func CommandTargetArn(region, account string, t store.CommandTarget) string {
	kind := "thing/"
	if t.Kind == store.CommandTargetClient {
		kind = "client/"
	}
	return "arn:aws:iot:" + region + ":" + account + ":" + kind + t.ID
}

func (a *API) targetArn(t store.CommandTarget) string {
	return CommandTargetArn(a.opts.Region, a.opts.Account, t)
}

func validation(msg string) error {
	return awsapi.Errorf(http.StatusBadRequest, "ValidationException", msg)
}

type createCommandRequest struct {
	Namespace           string                     `json:"namespace"`
	DisplayName         string                     `json:"displayName"`
	Description         string                     `json:"description"`
	Payload             *commandPayloadRequest     `json:"payload"`
	PayloadTemplate     string                     `json:"payloadTemplate"`
	Preprocessor        *store.CommandPreprocessor `json:"preprocessor"`
	MandatoryParameters []store.CommandParameter   `json:"mandatoryParameters"`
	RoleArn             string                     `json:"roleArn"`
	Tags                []store.CommandTag         `json:"tags"`
}

// commandPayloadRequest is CreateCommand's payload, with contentType
// absent (nil: the default) told apart from empty (refused: the model's
// minimum length is 1).
type commandPayloadRequest struct {
	Content     []byte  `json:"content"`
	ContentType *string `json:"contentType"`
}

func (a *API) createCommand(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var req createCommandRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	var payload *store.CommandPayload
	if p := req.Payload; p != nil {
		payload = &store.CommandPayload{Content: p.Content}
		if p.ContentType != nil {
			if *p.ContentType == "" {
				return validation("payload contentType must be at least 1 character; leave it out for application/octet-stream")
			}
			payload.ContentType = *p.ContentType
		}
	}
	c := &store.Command{
		CommandID: r.PathValue("commandId"), Namespace: req.Namespace, DisplayName: req.DisplayName,
		Description: req.Description, Payload: payload, PayloadTemplate: req.PayloadTemplate,
		Preprocessor: req.Preprocessor, MandatoryParameters: req.MandatoryParameters, RoleArn: req.RoleArn, Tags: req.Tags,
	}
	if err := store.ValidateCreateCommand(c); err != nil {
		return err
	}
	out, err := commandStore(ctx).CreateCommand(ctx, c)
	if err != nil {
		if e := awsapi.CommandError(err, http.StatusBadRequest); e.Type == "ConflictException" {
			e.Extra = map[string]any{"resourceId": c.CommandID}
			return e
		}
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, map[string]string{"commandId": out.CommandID, "commandArn": a.commandArn(out.CommandID)})
	return nil
}

type updateCommandRequest struct {
	DisplayName *string `json:"displayName"`
	Description *string `json:"description"`
	Deprecated  *bool   `json:"deprecated"`
}

func (a *API) updateCommand(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var req updateCommandRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	in := &store.UpdateCommandInput{CommandID: r.PathValue("commandId"), DisplayName: req.DisplayName,
		Description: req.Description, Deprecated: req.Deprecated}
	if err := store.ValidateUpdateCommand(in); err != nil {
		return err
	}
	c, err := commandStore(ctx).UpdateCommand(ctx, in)
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, struct {
		CommandID     string               `json:"commandId"`
		DisplayName   string               `json:"displayName,omitempty"`
		Description   string               `json:"description,omitempty"`
		Deprecated    bool                 `json:"deprecated"`
		LastUpdatedAt *awsapi.EpochSeconds `json:"lastUpdatedAt,omitempty"`
	}{c.CommandID, c.DisplayName, c.Description, c.Deprecated, awsapi.Epoch(c.LastUpdatedAt)})
	return nil
}

type wireCommand struct {
	CommandID           string                     `json:"commandId"`
	CommandArn          string                     `json:"commandArn"`
	Namespace           string                     `json:"namespace"`
	DisplayName         string                     `json:"displayName,omitempty"`
	Description         string                     `json:"description,omitempty"`
	MandatoryParameters []store.CommandParameter   `json:"mandatoryParameters,omitempty"`
	Payload             *store.CommandPayload      `json:"payload,omitempty"`
	PayloadTemplate     string                     `json:"payloadTemplate,omitempty"`
	Preprocessor        *store.CommandPreprocessor `json:"preprocessor,omitempty"`
	RoleArn             string                     `json:"roleArn,omitempty"`
	CreatedAt           *awsapi.EpochSeconds       `json:"createdAt,omitempty"`
	LastUpdatedAt       *awsapi.EpochSeconds       `json:"lastUpdatedAt,omitempty"`
	Deprecated          bool                       `json:"deprecated"`
	PendingDeletion     bool                       `json:"pendingDeletion"`
}

func (a *API) getCommand(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("commandId")
	if err := store.ValidateCommandID("commandId", id); err != nil {
		return err
	}
	c, err := commandStore(ctx).GetCommand(ctx, id)
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, wireCommand{
		CommandID: c.CommandID, CommandArn: a.commandArn(c.CommandID), Namespace: c.Namespace,
		DisplayName: c.DisplayName, Description: c.Description, MandatoryParameters: c.MandatoryParameters,
		Payload: c.Payload, PayloadTemplate: c.PayloadTemplate, Preprocessor: c.Preprocessor, RoleArn: c.RoleArn,
		CreatedAt: awsapi.Epoch(c.CreatedAt), LastUpdatedAt: awsapi.Epoch(c.LastUpdatedAt),
		Deprecated: c.Deprecated, PendingDeletion: c.PendingDeletion,
	})
	return nil
}

// commandMaxResults reads maxResults (1-100).
func commandMaxResults(r *http.Request) (int, error) {
	n, e := awsapi.QueryInt(r, "maxResults")
	if e != nil {
		return 0, e
	}
	if n == nil {
		return 0, nil
	}
	if *n < 1 || *n > store.MaxCommandListResults {
		return 0, validation("maxResults must be between 1 and 100")
	}
	return int(*n), nil
}

func sortAscending(s string) (bool, error) {
	switch s {
	case "", "DESCENDING":
		return false, nil
	case "ASCENDING":
		return true, nil
	}
	return false, validation("sortOrder must be ASCENDING or DESCENDING")
}

func checkNamespace(ns string) error {
	if ns != "" && ns != store.CommandNamespaceIoT && ns != store.CommandNamespaceFleetWise {
		return validation("namespace must be AWS-IoT or AWS-IoT-FleetWise")
	}
	return nil
}

func (a *API) listCommands(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	in := &store.ListCommandsInput{Namespace: q.Get("namespace"), CommandParameterName: q.Get("commandParameterName"), NextToken: q.Get("nextToken")}
	var err error
	if in.MaxResults, err = commandMaxResults(r); err != nil {
		return err
	}
	if in.Ascending, err = sortAscending(q.Get("sortOrder")); err != nil {
		return err
	}
	if err := checkNamespace(in.Namespace); err != nil {
		return err
	}
	page, err := commandStore(ctx).ListCommands(ctx, in)
	if err != nil {
		return err
	}
	type summary struct {
		CommandArn      string               `json:"commandArn"`
		CommandID       string               `json:"commandId"`
		DisplayName     string               `json:"displayName,omitempty"`
		Deprecated      bool                 `json:"deprecated"`
		CreatedAt       *awsapi.EpochSeconds `json:"createdAt,omitempty"`
		LastUpdatedAt   *awsapi.EpochSeconds `json:"lastUpdatedAt,omitempty"`
		PendingDeletion bool                 `json:"pendingDeletion"`
	}
	out := struct {
		Commands  []summary `json:"commands"`
		NextToken string    `json:"nextToken,omitempty"`
	}{Commands: []summary{}, NextToken: page.NextToken}
	for _, c := range page.Commands {
		out.Commands = append(out.Commands, summary{a.commandArn(c.CommandID), c.CommandID, c.DisplayName, c.Deprecated,
			awsapi.Epoch(c.CreatedAt), awsapi.Epoch(c.LastUpdatedAt), c.PendingDeletion})
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteCommand(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("commandId")
	if err := store.ValidateCommandID("commandId", id); err != nil {
		return err
	}
	now, err := commandStore(ctx).DeleteCommand(ctx, id)
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if now {
		status = http.StatusNoContent
	}
	w.WriteHeader(status)
	return nil
}

// WireCommandExecution is GetCommandExecution's response.
type WireCommandExecution struct {
	ExecutionID             string                                 `json:"executionId"`
	CommandArn              string                                 `json:"commandArn"`
	TargetArn               string                                 `json:"targetArn"`
	Status                  string                                 `json:"status"`
	StatusReason            *store.CommandStatusReason             `json:"statusReason,omitempty"`
	Result                  map[string]store.CommandResult         `json:"result,omitempty"`
	Parameters              map[string]store.CommandParameterValue `json:"parameters,omitempty"`
	ExecutionTimeoutSeconds int64                                  `json:"executionTimeoutSeconds"`
	CreatedAt               *awsapi.EpochSeconds                   `json:"createdAt,omitempty"`
	LastUpdatedAt           *awsapi.EpochSeconds                   `json:"lastUpdatedAt,omitempty"`
	StartedAt               *awsapi.EpochSeconds                   `json:"startedAt,omitempty"`
	CompletedAt             *awsapi.EpochSeconds                   `json:"completedAt,omitempty"`
	TimeToLive              *awsapi.EpochSeconds                   `json:"timeToLive,omitempty"`
}

func (a *API) executionTarget(r *http.Request) (string, store.CommandTarget, error) {
	id := r.PathValue("executionId")
	if err := store.ValidateCommandID("executionId", id); err != nil {
		return "", store.CommandTarget{}, err
	}
	arn := r.URL.Query().Get("targetArn")
	if arn == "" {
		return "", store.CommandTarget{}, validation("targetArn is required")
	}
	t, err := store.ParseCommandTargetARN(arn)
	return id, t, err
}

// getCommandExecution returns an execution. Its result is included
// unless includeResult=false: the output AWS IoT was observed to give
// without the flag has it (COMMANDS.md §2.7).
func (a *API) getCommandExecution(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	id, t, err := a.executionTarget(r)
	if err != nil {
		return err
	}
	include := true
	if r.URL.Query().Has("includeResult") {
		var e *awsapi.Error
		if include, e = awsapi.QueryBool(r, "includeResult"); e != nil {
			return e
		}
	}
	x, err := commandStore(ctx).GetCommandExecution(ctx, id, t)
	if err != nil {
		return err
	}
	out := WireCommandExecution{
		ExecutionID: x.ExecutionID, CommandArn: a.commandArn(x.CommandID), TargetArn: a.targetArn(x.Target),
		Status: string(x.Status), StatusReason: x.StatusReason, Parameters: x.Parameters,
		ExecutionTimeoutSeconds: x.ExecutionTimeoutSeconds, CreatedAt: awsapi.Epoch(x.CreatedAt),
		LastUpdatedAt: awsapi.Epoch(x.LastUpdatedAt), StartedAt: awsapi.Epoch(x.StartedAt),
		CompletedAt: awsapi.Epoch(x.CompletedAt), TimeToLive: awsapi.Epoch(x.TimeToLive),
	}
	if include {
		out.Result = x.Result
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

type timeFilter struct {
	After  *string `json:"after"`
	Before *string `json:"before"`
}

type listCommandExecutionsRequest struct {
	Namespace           string      `json:"namespace"`
	Status              string      `json:"status"`
	SortOrder           string      `json:"sortOrder"`
	StartedTimeFilter   *timeFilter `json:"startedTimeFilter"`
	CompletedTimeFilter *timeFilter `json:"completedTimeFilter"`
	TargetArn           string      `json:"targetArn"`
	CommandArn          string      `json:"commandArn"`
}

// filterLayout is the time filters' format, yyyy-MM-dd'T'HH:mm (UTC).
const filterLayout = "2006-01-02T15:04"

func (f *timeFilter) bounds(name string) (after, before time.Time, err error) {
	parse := func(field string, s *string) (time.Time, error) {
		if s == nil {
			return time.Time{}, nil
		}
		t, err := time.Parse(filterLayout, *s)
		if err != nil || len(*s) > 64 {
			return time.Time{}, validation(name + "." + field + " must be a time in the format yyyy-MM-dd'T'HH:mm")
		}
		return t, nil
	}
	if after, err = parse("after", f.After); err != nil {
		return
	}
	before, err = parse("before", f.Before)
	return
}

func (a *API) listCommandExecutions(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var req listCommandExecutionsRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	in := &store.ListCommandExecutionsInput{Namespace: req.Namespace, Status: store.CommandStatus(req.Status), NextToken: r.URL.Query().Get("nextToken")}
	var err error
	if in.MaxResults, err = commandMaxResults(r); err != nil {
		return err
	}
	if in.Ascending, err = sortAscending(req.SortOrder); err != nil {
		return err
	}
	if err := checkNamespace(in.Namespace); err != nil {
		return err
	}
	if in.Status != "" && !store.ValidCommandStatus(in.Status) {
		return validation("status must be one of CREATED, IN_PROGRESS, SUCCEEDED, FAILED, REJECTED, TIMED_OUT")
	}
	if req.StartedTimeFilter != nil && req.CompletedTimeFilter != nil {
		return validation("give only one of startedTimeFilter and completedTimeFilter")
	}
	if f := req.StartedTimeFilter; f != nil {
		if in.StartedAfter, in.StartedBefore, err = f.bounds("startedTimeFilter"); err != nil {
			return err
		}
	}
	if f := req.CompletedTimeFilter; f != nil {
		if in.CompletedAfter, in.CompletedBefore, err = f.bounds("completedTimeFilter"); err != nil {
			return err
		}
	}
	switch {
	case req.CommandArn != "" && req.TargetArn != "":
		return validation("give only one of commandArn and targetArn")
	case req.CommandArn != "":
		if in.CommandID, err = store.ParseCommandARN(req.CommandArn); err != nil {
			return err
		}
	case req.TargetArn != "":
		t, err := store.ParseCommandTargetARN(req.TargetArn)
		if err != nil {
			return err
		}
		in.Target = &t
	default:
		return validation("give commandArn or targetArn")
	}
	page, err := commandStore(ctx).ListCommandExecutions(ctx, in)
	if err != nil {
		return err
	}
	type summary struct {
		CommandArn  string               `json:"commandArn"`
		ExecutionID string               `json:"executionId"`
		TargetArn   string               `json:"targetArn"`
		Status      string               `json:"status"`
		CreatedAt   *awsapi.EpochSeconds `json:"createdAt,omitempty"`
		StartedAt   *awsapi.EpochSeconds `json:"startedAt,omitempty"`
		CompletedAt *awsapi.EpochSeconds `json:"completedAt,omitempty"`
	}
	out := struct {
		CommandExecutions []summary `json:"commandExecutions"`
		NextToken         string    `json:"nextToken,omitempty"`
	}{CommandExecutions: []summary{}, NextToken: page.NextToken}
	for _, x := range page.Executions {
		out.CommandExecutions = append(out.CommandExecutions, summary{a.commandArn(x.CommandID), x.ExecutionID,
			a.targetArn(x.Target), string(x.Status), awsapi.Epoch(x.CreatedAt), awsapi.Epoch(x.StartedAt), awsapi.Epoch(x.CompletedAt)})
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteCommandExecution(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	id, t, err := a.executionTarget(r)
	if err != nil {
		return err
	}
	if err := commandStore(ctx).DeleteCommandExecution(ctx, id, t); err != nil {
		return err
	}
	awsapi.WriteEmpty(w)
	return nil
}
