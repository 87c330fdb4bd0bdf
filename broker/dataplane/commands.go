package dataplane

import (
	"context"
	"net/http"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/store"
)

// StartCommandExecution (POST /command-executions) is the fifth operation
// of iot-jobs-data 2017-09-29: it sends a command to a thing or an MQTT
// client (COMMANDS.md §2.6). Its errors are the command exceptions, with
// ThrottlingException at 429 as this API has it.

type startCommandExecutionRequest struct {
	TargetArn               *string                                `json:"targetArn"`
	CommandArn              *string                                `json:"commandArn"`
	Parameters              map[string]store.CommandParameterValue `json:"parameters"`
	ExecutionTimeoutSeconds *int64                                 `json:"executionTimeoutSeconds"`
	ClientToken             *string                                `json:"clientToken"`
}

func (a *API) startCommandExecution(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	if err := a.startCommand(ctx, w, r); err != nil {
		return awsapi.CommandError(err, http.StatusTooManyRequests)
	}
	return nil
}

func (a *API) startCommand(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	cs, ok := a.opts.Store.(store.CommandStore)
	if !ok {
		return store.Errorf(store.ErrInvalidRequest, "this broker's store does not keep commands")
	}
	var req startCommandExecutionRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	if req.TargetArn == nil || req.CommandArn == nil {
		return store.Errorf(store.ErrInvalidRequest, "targetArn and commandArn are required")
	}
	target, err := store.ParseCommandTargetARN(*req.TargetArn)
	if err != nil {
		return err
	}
	cmd, err := store.ParseCommandARN(*req.CommandArn)
	if err != nil {
		return err
	}
	in := &store.StartCommandExecutionInput{CommandID: cmd, Target: target, Parameters: req.Parameters, ExecutionID: awsapi.NewRequestID()}
	if req.ExecutionTimeoutSeconds != nil {
		if *req.ExecutionTimeoutSeconds < 1 {
			return store.Errorf(store.ErrInvalidRequest, "executionTimeoutSeconds must be at least 1")
		}
		in.ExecutionTimeoutSeconds = *req.ExecutionTimeoutSeconds
	}
	if req.ClientToken != nil {
		if *req.ClientToken == "" {
			return store.Errorf(store.ErrInvalidRequest, "clientToken must not be empty")
		}
		in.ClientToken = *req.ClientToken
	}
	x, err := cs.StartCommandExecution(ctx, in)
	if err != nil {
		if e := awsapi.CommandError(err, http.StatusTooManyRequests); e.Type == "ConflictException" {
			e.Extra = map[string]any{"resourceId": in.ClientToken}
			return e
		}
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, map[string]string{"executionId": x.ExecutionID})
	return nil
}
