package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// AWS IoT commands (COMMANDS.md): a command is a control-plane resource
// holding a payload (static) or a payload template (dynamic); an execution
// sends it to one device (a thing, or an MQTT client) and follows the
// device's status reports until a final status or the execution timeout.

// CommandStore runs the operations of AWS IoT commands against durable
// state, with the guarantees of Store: a method that changes state returns
// only after the change is committed, and every committed change is handed
// to the CommandHandler, in commit order, before the method returns.
type CommandStore interface {
	// CreateCommand stores a new command (validated by the caller with
	// ValidateCreateCommand).
	CreateCommand(ctx context.Context, c *Command) (*Command, error)
	// UpdateCommand changes a command's display name, description or
	// deprecation.
	UpdateCommand(ctx context.Context, in *UpdateCommandInput) (*Command, error)
	// GetCommand returns a command, pending deletion or not.
	GetCommand(ctx context.Context, id string) (*Command, error)
	// ListCommands pages the commands in creation order.
	ListCommands(ctx context.Context, in *ListCommandsInput) (*CommandsPage, error)
	// DeleteCommand deletes a command at once (now true) or schedules its
	// deletion CommandDeletionGrace later.
	DeleteCommand(ctx context.Context, id string) (now bool, err error)
	// StartCommandExecution creates an execution of a command for a
	// target, or returns the one an earlier request with the same client
	// token created.
	StartCommandExecution(ctx context.Context, in *StartCommandExecutionInput) (*CommandExecution, error)
	// GetCommandExecution returns one execution of a target.
	GetCommandExecution(ctx context.Context, id string, target CommandTarget) (*CommandExecution, error)
	// ListCommandExecutions pages the executions of a command or of a
	// target.
	ListCommandExecutions(ctx context.Context, in *ListCommandExecutionsInput) (*CommandExecutionsPage, error)
	// DeleteCommandExecution deletes an execution that has finished.
	DeleteCommandExecution(ctx context.Context, id string, target CommandTarget) error
	// UpdateCommandExecution applies a device's status report.
	UpdateCommandExecution(ctx context.Context, in *UpdateCommandExecutionInput) (*CommandExecution, error)
	// SetCommandHandler installs the function that receives every
	// committed change of an execution. Install it before serving traffic.
	SetCommandHandler(h CommandHandler)
}

// CommandHandler receives committed execution changes in commit order,
// from the commit path: it must not block for long.
type CommandHandler func([]CommandChange)

// CommandChange is one committed change of an execution.
type CommandChange struct {
	// Execution is the execution after the change (before it, for a
	// deletion).
	Execution *CommandExecution
	// Created is set for a new execution: Request is then the message to
	// publish to the device.
	Created bool
	Request *CommandRequest
	// StatusChanged is set when the change sets a status (a new
	// execution, a device update, the timeout): an execution event is due.
	StatusChanged bool
	// TimedOut is set when the timeout moved the execution to TIMED_OUT.
	TimedOut bool
	// At is when the change was committed.
	At time.Time
}

// CommandRequest is what an execution sends to its device.
type CommandRequest struct {
	// Format is the request topic's last level: "json", "cbor" or ""
	// (the topic .../request with no suffix).
	Format      string
	ContentType string
	Payload     []byte
	// Expires is when the execution times out; a message not delivered
	// by then is dropped.
	Expires time.Time
}

// Command namespaces.
const (
	CommandNamespaceIoT       = "AWS-IoT"
	CommandNamespaceFleetWise = "AWS-IoT-FleetWise"
)

// Command is a command resource.
type Command struct {
	CommandID           string               `json:"commandId"`
	Namespace           string               `json:"namespace"`
	DisplayName         string               `json:"displayName,omitempty"`
	Description         string               `json:"description,omitempty"`
	Payload             *CommandPayload      `json:"payload,omitempty"`
	PayloadTemplate     string               `json:"payloadTemplate,omitempty"`
	Preprocessor        *CommandPreprocessor `json:"preprocessor,omitempty"`
	MandatoryParameters []CommandParameter   `json:"mandatoryParameters,omitempty"`
	RoleArn             string               `json:"roleArn,omitempty"`
	Tags                []CommandTag         `json:"tags,omitempty"`
	CreatedAt           time.Time            `json:"createdAt"`
	LastUpdatedAt       time.Time            `json:"lastUpdatedAt"`
	Deprecated          bool                 `json:"deprecated,omitempty"`
	DeprecatedAt        time.Time            `json:"deprecatedAt,omitzero"`
	PendingDeletion     bool                 `json:"pendingDeletion,omitempty"`
	// DeleteAt is when a scheduled deletion removes the command.
	DeleteAt time.Time `json:"deleteAt,omitzero"`
	// Seq orders commands by creation.
	Seq uint64 `json:"seq"`
}

// Gone reports whether a scheduled deletion has removed the command by now.
func (c *Command) Gone(now time.Time) bool {
	return c.PendingDeletion && !now.Before(c.DeleteAt)
}

// CommandPayload is a static command's payload.
type CommandPayload struct {
	Content     []byte `json:"content,omitempty"`
	ContentType string `json:"contentType,omitempty"`
}

// CommandPreprocessor says how a dynamic command's template becomes the
// payload.
type CommandPreprocessor struct {
	AwsJSONSubstitution *AwsJSONSubstitution `json:"awsJsonSubstitution,omitempty"`
}

// AwsJSONSubstitution substitutes the template's placeholders and encodes
// the result as OutputFormat (JSON or CBOR).
type AwsJSONSubstitution struct {
	OutputFormat string `json:"outputFormat"`
}

// CommandParameter is a parameter of a dynamic command.
type CommandParameter struct {
	Name            string                           `json:"name"`
	Type            string                           `json:"type,omitempty"`
	Value           *CommandParameterValue           `json:"value,omitempty"`
	DefaultValue    *CommandParameterValue           `json:"defaultValue,omitempty"`
	ValueConditions []CommandParameterValueCondition `json:"valueConditions,omitempty"`
	Description     string                           `json:"description,omitempty"`
}

// CommandParameterValue is a typed value; exactly one member is set.
type CommandParameterValue struct {
	S   *string  `json:"S,omitempty"`
	B   *bool    `json:"B,omitempty"`
	I   *int32   `json:"I,omitempty"`
	L   *int64   `json:"L,omitempty"`
	D   *float64 `json:"D,omitempty"`
	BIN []byte   `json:"BIN,omitempty"`
	UL  *string  `json:"UL,omitempty"`
}

// CommandParameterValueCondition restricts a parameter's value.
type CommandParameterValueCondition struct {
	ComparisonOperator string                       `json:"comparisonOperator"`
	Operand            CommandParameterValueOperand `json:"operand"`
}

// CommandParameterValueOperand is a condition's operand; one member is set.
type CommandParameterValueOperand struct {
	Number      *string             `json:"number,omitempty"`
	Numbers     []string            `json:"numbers,omitempty"`
	String      *string             `json:"string,omitempty"`
	Strings     []string            `json:"strings,omitempty"`
	NumberRange *CommandNumberRange `json:"numberRange,omitempty"`
}

// CommandNumberRange is an inclusive range of numbers, as strings.
type CommandNumberRange struct {
	Min string `json:"min"`
	Max string `json:"max"`
}

// CommandTag is a tag given at creation.
type CommandTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// UpdateCommandInput is an UpdateCommand request; nil fields stay.
type UpdateCommandInput struct {
	CommandID   string
	DisplayName *string
	Description *string
	Deprecated  *bool
}

// ListCommandsInput filters and pages ListCommands.
type ListCommandsInput struct {
	Namespace            string // "" lists both namespaces
	CommandParameterName string
	Ascending            bool
	MaxResults           int
	NextToken            string
}

// CommandsPage is one page of commands.
type CommandsPage struct {
	Commands  []*Command
	NextToken string
}

// CommandTarget is the device an execution is for: a thing or an MQTT
// client.
type CommandTarget struct {
	// Kind is "things" or "clients", as in the topics.
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// The kinds of command targets.
const (
	CommandTargetThing  = "things"
	CommandTargetClient = "clients"
)

// String returns kind/id.
func (t CommandTarget) String() string { return t.Kind + "/" + t.ID }

// CommandStatus is the status of a command execution.
type CommandStatus string

// Command execution statuses.
const (
	CommandCreated    CommandStatus = "CREATED"
	CommandInProgress CommandStatus = "IN_PROGRESS"
	CommandSucceeded  CommandStatus = "SUCCEEDED"
	CommandFailed     CommandStatus = "FAILED"
	CommandRejected   CommandStatus = "REJECTED"
	CommandTimedOut   CommandStatus = "TIMED_OUT"
)

// CommandStatuses lists every status, in the order of the model.
var CommandStatuses = []CommandStatus{CommandCreated, CommandInProgress, CommandSucceeded, CommandFailed, CommandRejected, CommandTimedOut}

// ValidCommandStatus reports whether s is one of the statuses.
func ValidCommandStatus(s CommandStatus) bool {
	for _, v := range CommandStatuses {
		if v == s {
			return true
		}
	}
	return false
}

// CommandStatusReason is why an execution has its status.
type CommandStatusReason struct {
	ReasonCode        string `json:"reasonCode"`
	ReasonDescription string `json:"reasonDescription,omitempty"`
}

// NoResponseReasonCode is the reason code of a timeout set by the broker.
const NoResponseReasonCode = "$NO_RESPONSE_FROM_DEVICE"

// CommandResult is one typed value of an execution's result.
type CommandResult struct {
	S   *string `json:"S,omitempty"`
	B   *bool   `json:"B,omitempty"`
	BIN []byte  `json:"BIN,omitempty"`
}

// CommandExecution is one execution of a command.
type CommandExecution struct {
	ExecutionID             string                           `json:"executionId"`
	CommandID               string                           `json:"commandId"`
	Target                  CommandTarget                    `json:"target"`
	Status                  CommandStatus                    `json:"status"`
	StatusReason            *CommandStatusReason             `json:"statusReason,omitempty"`
	Result                  map[string]CommandResult         `json:"result,omitempty"`
	Parameters              map[string]CommandParameterValue `json:"parameters,omitempty"`
	ExecutionTimeoutSeconds int64                            `json:"executionTimeoutSeconds"`
	CreatedAt               time.Time                        `json:"createdAt"`
	LastUpdatedAt           time.Time                        `json:"lastUpdatedAt"`
	StartedAt               time.Time                        `json:"startedAt,omitzero"`
	CompletedAt             time.Time                        `json:"completedAt,omitzero"`
	TimeToLive              time.Time                        `json:"timeToLive,omitzero"`
	// CloudTimedOut says a TIMED_OUT status was set by the broker's
	// timer: the device may still report a final status.
	CloudTimedOut bool `json:"cloudTimedOut,omitempty"`
	// Deadline is when the timer times the execution out; zero once it
	// cannot fire any more.
	Deadline time.Time `json:"deadline,omitzero"`
	// ClientToken and RequestHash identify the StartCommandExecution
	// request that created the execution.
	ClientToken string `json:"clientToken,omitempty"`
	RequestHash string `json:"requestHash,omitempty"`
	// Seq orders executions by creation.
	Seq uint64 `json:"seq"`
}

// Final reports whether nothing can change the execution's status any
// more: a final status the device set.
func (e *CommandExecution) Final() bool {
	switch e.Status {
	case CommandSucceeded, CommandFailed, CommandRejected:
		return true
	case CommandTimedOut:
		return !e.CloudTimedOut
	}
	return false
}

// Clone returns a deep enough copy to change the status fields of.
func (e *CommandExecution) Clone() *CommandExecution {
	c := *e
	if e.StatusReason != nil {
		r := *e.StatusReason
		c.StatusReason = &r
	}
	return &c
}

// CommandExecutionRetention is how long an execution is kept (its
// timeToLive): six months, as AWS IoT.
const CommandExecutionRetention = 183 * 24 * time.Hour

// CommandDeletionGrace is how long a scheduled command deletion waits, and
// how long a command must have been deprecated to be deleted at once.
const CommandDeletionGrace = 12 * time.Hour

// Execution timeout limits (seconds).
const (
	DefaultCommandTimeoutSeconds = 10
	MaxCommandTimeoutSeconds     = 43200
)

// StartCommandExecutionInput is a StartCommandExecution request, its ARNs
// already parsed.
type StartCommandExecutionInput struct {
	CommandID               string
	Target                  CommandTarget
	Parameters              map[string]CommandParameterValue
	ExecutionTimeoutSeconds int64 // 0: the default
	ClientToken             string
	// ExecutionID is the id to give a new execution; the caller makes
	// it (a UUID), so that a retried transaction keeps it.
	ExecutionID string
}

// ListCommandExecutionsInput filters and pages ListCommandExecutions.
type ListCommandExecutionsInput struct {
	// One of CommandID and Target is set.
	CommandID string
	Target    *CommandTarget
	Namespace string
	Status    CommandStatus
	Ascending bool
	// StartedAfter .. CompletedBefore filter on startedAt or completedAt
	// (zero: no bound).
	StartedAfter, StartedBefore     time.Time
	CompletedAfter, CompletedBefore time.Time
	MaxResults                      int
	NextToken                       string
}

// CommandExecutionsPage is one page of executions.
type CommandExecutionsPage struct {
	Executions []*CommandExecution
	NextToken  string
}

// UpdateCommandExecutionInput is a device's status report.
type UpdateCommandExecutionInput struct {
	ExecutionID  string
	Target       CommandTarget
	Status       CommandStatus
	StatusReason *CommandStatusReason
	Result       map[string]CommandResult
}

// ApplyCommandUpdate applies a device's report to e (COMMANDS.md §1.4,
// §3.5) and returns the execution after it, or the rejection.
func ApplyCommandUpdate(e *CommandExecution, in *UpdateCommandExecutionInput, now time.Time) (*CommandExecution, error) {
	if e.Final() {
		return nil, Errorf(ErrTerminalState,
			"Command Execution status cannot be updated to %s since execution has already completed with status %s.", in.Status, e.Status)
	}
	switch in.Status {
	case CommandInProgress:
		if e.Status == CommandTimedOut {
			return nil, Errorf(ErrInvalidStateTransition,
				"Command Execution status cannot be updated to %s since execution has timed out; only a final status can follow.", in.Status)
		}
	case CommandSucceeded, CommandFailed, CommandRejected, CommandTimedOut:
	default: // CREATED included: ValidateCommandUpdate refuses these first
		return nil, Errorf(ErrInvalidRequest, "status %q is not one of IN_PROGRESS, SUCCEEDED, FAILED, REJECTED, TIMED_OUT", in.Status)
	}
	n := e.Clone()
	n.Status, n.LastUpdatedAt = in.Status, now
	n.CloudTimedOut = false
	n.StatusReason = in.StatusReason
	if in.Result != nil {
		n.Result = in.Result
	}
	if n.Final() {
		n.CompletedAt = now
		n.Deadline = time.Time{}
	}
	return n, nil
}

// TimeOutCommand returns e timed out by the broker at now, or nil when e is
// no longer waiting for its device.
func TimeOutCommand(e *CommandExecution, now time.Time) *CommandExecution {
	if e.Status != CommandCreated && e.Status != CommandInProgress {
		return nil
	}
	n := e.Clone()
	n.Status, n.CloudTimedOut, n.LastUpdatedAt = CommandTimedOut, true, now
	n.StatusReason = &CommandStatusReason{ReasonCode: NoResponseReasonCode}
	n.Deadline = time.Time{}
	return n
}

// ErrCommandNotFound reports a command that does not exist.
func ErrCommandNotFound(id string) *Error {
	return Errorf(ErrNotFound, "Command %s does not exist.", id)
}

// ErrCommandExecutionNotFound reports an execution that does not exist for
// the target.
func ErrCommandExecutionNotFound(id string, t CommandTarget) *Error {
	return Errorf(ErrNotFound, "Command execution %s does not exist for target %s.", id, t)
}

// String describes the value for logs.
func (r CommandResult) String() string {
	switch {
	case r.S != nil:
		return fmt.Sprintf("S:%q", *r.S)
	case r.B != nil:
		return fmt.Sprintf("B:%v", *r.B)
	}
	return fmt.Sprintf("BIN:%d bytes", len(r.BIN))
}

// ParseCommandARN returns the command id of a command ARN
// (arn:aws:iot:<region>:<account>:command/<commandId>).
func ParseCommandARN(arn string) (string, error) {
	kind, id, ok := splitIoTARN(arn)
	if !ok || kind != "command" || !ValidCommandID(id) {
		return "", Errorf(ErrInvalidRequest, "commandArn %q is not an AWS IoT command ARN", truncate(arn))
	}
	return id, nil
}

// ParseCommandTargetARN returns the device a targetArn names: a thing
// (arn:...:thing/<thingName>) or an MQTT client (arn:...:client/<clientId>).
func ParseCommandTargetARN(arn string) (CommandTarget, error) {
	if len(arn) > MaxCommandTargetArnLength {
		return CommandTarget{}, Errorf(ErrInvalidRequest, "targetArn must be at most %d characters", MaxCommandTargetArnLength)
	}
	kind, id, ok := splitIoTARN(arn)
	switch {
	case ok && kind == "thing":
		if err := ValidateThingName(id); err != nil {
			return CommandTarget{}, err
		}
		return CommandTarget{Kind: CommandTargetThing, ID: id}, nil
	case ok && kind == "client":
		if !ValidCommandClientID(id) {
			return CommandTarget{}, Errorf(ErrInvalidRequest, "client id %q must be 1-128 characters without /, +, # or control characters", truncate(id))
		}
		return CommandTarget{Kind: CommandTargetClient, ID: id}, nil
	}
	return CommandTarget{}, Errorf(ErrInvalidRequest, "targetArn %q is not an AWS IoT thing or client ARN", truncate(arn))
}

// ValidCommandClientID reports whether an MQTT client id can be the target
// of a command: it has to fit in one topic level.
func ValidCommandClientID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r == '/' || r == '+' || r == '#' || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func splitIoTARN(arn string) (kind, id string, ok bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "iot" || parts[3] == "" || parts[4] == "" {
		return "", "", false
	}
	return strings.Cut(parts[5], "/")
}
