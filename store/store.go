package store

import (
	"context"
	"io"
	"time"
)

// Store runs the operations of AWS IoT Jobs against durable state. Every
// method is safe for concurrent use. A method that changes state returns
// only after the change is committed (durably, unless the backend was
// configured otherwise), so a caller may acknowledge it at once.
//
// Changes that devices must hear about (notify, notify-next) are not
// returned by the methods: every committed change, whoever caused it, is
// handed to the ChangeHandler in commit order, and a method's own changes
// have been handed over by the time it returns.
type Store interface {
	// GetPendingJobExecutions lists a thing's pending executions.
	GetPendingJobExecutions(ctx context.Context, thingName string) (*PendingExecutions, error)
	// StartNextPendingJobExecution starts the thing's next pending
	// execution, or returns the one already IN_PROGRESS; Execution is nil
	// when nothing is pending.
	StartNextPendingJobExecution(ctx context.Context, in *StartNextInput) (*ExecutionOutput, error)
	// DescribeJobExecution returns one execution; JobID may be "$next",
	// in which case Execution is nil when nothing is pending.
	DescribeJobExecution(ctx context.Context, in *DescribeExecutionInput) (*ExecutionOutput, error)
	// UpdateJobExecution applies a device's status report.
	UpdateJobExecution(ctx context.Context, in *UpdateExecutionInput) (*ExecutionOutput, error)

	// CreateJob creates a job and queues its executions.
	CreateJob(ctx context.Context, in *CreateJobInput) (*Job, error)
	// DescribeJob returns a job with its process details.
	DescribeJob(ctx context.Context, jobID string) (*Job, error)
	// GetJobDocument returns a job's document; beforeSubstitution returns
	// it as it was before documentParameters were substituted.
	GetJobDocument(ctx context.Context, jobID string, beforeSubstitution bool) (string, error)
	// ListJobs lists jobs, newest first.
	ListJobs(ctx context.Context, in *ListJobsInput) (*ListJobsOutput, error)
	// CancelJob cancels a job and its QUEUED executions (and IN_PROGRESS
	// ones with Force).
	CancelJob(ctx context.Context, in *CancelJobInput) (*Job, error)
	// DeleteJob deletes a job and all its executions.
	DeleteJob(ctx context.Context, in *DeleteJobInput) error
	// ListJobExecutionsForJob lists the executions of a job.
	ListJobExecutionsForJob(ctx context.Context, in *ListExecutionsInput) (*ListExecutionsOutput, error)
	// ListJobExecutionsForThing lists the executions of a thing.
	ListJobExecutionsForThing(ctx context.Context, in *ListExecutionsInput) (*ListExecutionsOutput, error)
	// CancelJobExecution cancels one thing's execution of a job.
	CancelJobExecution(ctx context.Context, in *CancelExecutionInput) error
	// DeleteJobExecution deletes one execution.
	DeleteJobExecution(ctx context.Context, in *DeleteExecutionInput) error
	// UpdateJob changes a job's description and configuration.
	UpdateJob(ctx context.Context, in *UpdateJobInput) error
	// AssociateTargetsWithJob adds targets to a continuous job.
	AssociateTargetsWithJob(ctx context.Context, in *AssociateTargetsInput) (*Job, error)

	// Job templates.
	CreateJobTemplate(ctx context.Context, in *CreateJobTemplateInput) (*JobTemplate, error)
	DescribeJobTemplate(ctx context.Context, id string) (*JobTemplate, error)
	ListJobTemplates(ctx context.Context, in *PageInput) (*TemplatesPage, error)
	DeleteJobTemplate(ctx context.Context, id string) error

	// The thing registry and static thing groups.
	CreateThing(ctx context.Context, in *CreateThingInput) (*Thing, error)
	DescribeThing(ctx context.Context, name string) (*Thing, error)
	DeleteThing(ctx context.Context, in *DeleteThingInput) error
	ListThings(ctx context.Context, in *PageInput) (*ThingsPage, error)
	CreateThingGroup(ctx context.Context, in *CreateThingGroupInput) (*ThingGroup, error)
	DescribeThingGroup(ctx context.Context, name string) (*ThingGroup, error)
	DeleteThingGroup(ctx context.Context, in *DeleteThingGroupInput) error
	ListThingGroups(ctx context.Context, in *ListThingGroupsInput) (*GroupsPage, error)
	AddThingToThingGroup(ctx context.Context, in *MembershipInput) error
	RemoveThingFromThingGroup(ctx context.Context, in *MembershipInput) error
	ListThingsInThingGroup(ctx context.Context, in *ListThingsInGroupInput) (*NamesPage, error)
	ListThingGroupsForThing(ctx context.Context, thing string, in *PageInput) (*GroupsPage, error)

	// Event messages.
	DescribeEventConfigurations(ctx context.Context) (*EventConfigurations, error)
	UpdateEventConfigurations(ctx context.Context, job, jobExecution *bool) error

	// Ping reports whether the store can serve: it reads, and its write
	// path is alive.
	Ping(ctx context.Context) error

	// SetChangeHandler installs the function that receives every committed
	// change. Install it before serving traffic.
	SetChangeHandler(h ChangeHandler)
	// Close stops background work and closes the store.
	Close() error
}

// ChangeHandler receives committed changes in commit order. It is called
// from the backend's commit path and must not block for long.
type ChangeHandler func([]Change)

// Change is what one committed operation means for the devices of one
// thing, in one job namespace: a thing has a queue of pending executions
// per namespace (jobs created without a namespaceId are in "", the
// namespace of the plain jobs topics), and each queue has its own notify
// and notify-next.
type Change struct {
	ThingName string
	// Namespace is the job namespace whose queue changed ("" for jobs
	// without one); its notifications go to notify-namespace-{Namespace}
	// and notify-next-namespace-{Namespace}.
	Namespace string
	// Notify is set when an execution joined or left the queue; Pending
	// is its first MaxPendingListed entries, in "next" order, as the
	// notify message lists them.
	Notify  bool
	Pending PendingSet
	// NotifyNext is set when a different execution became the queue's
	// next; Next is it (nil when nothing is pending) and NextDocument its
	// job document.
	NotifyNext   bool
	Next         *Execution
	NextDocument string
	// At is when the change was committed.
	At time.Time
	// Event, when set, is an $aws/events message to publish (ThingName is
	// empty for job events). Events are only produced while enabled.
	Event *Event
	// After, when not nil, is closed once the reply to the request that
	// made the change has been sent (see WithNotifyAfter); notifications
	// wait for it, so a device hears "accepted" before what followed.
	After <-chan struct{}
}

type notifyAfterKey struct{}

// WithNotifyAfter returns a context whose operations' changes carry gate
// as Change.After. A transport closes gate once it has sent its reply.
func WithNotifyAfter(ctx context.Context, gate <-chan struct{}) context.Context {
	return context.WithValue(ctx, notifyAfterKey{}, gate)
}

// NotifyAfter returns the gate set by WithNotifyAfter, or nil.
func NotifyAfter(ctx context.Context) <-chan struct{} {
	gate, _ := ctx.Value(notifyAfterKey{}).(<-chan struct{})
	return gate
}

// PendingExecutions is the result of GetPendingJobExecutions.
type PendingExecutions struct {
	InProgress []PendingExecution
	Queued     []PendingExecution
}

// StartNextInput is a StartNextPendingJobExecution request.
type StartNextInput struct {
	ThingName            string
	StatusDetails        map[string]string // nil leaves them unchanged
	StepTimeoutInMinutes *int64
}

// DescribeExecutionInput is a DescribeJobExecution request.
type DescribeExecutionInput struct {
	ThingName          string
	JobID              string // a job id, or "$next" on the device APIs
	ExecutionNumber    *int64 // nil: the latest execution
	IncludeJobDocument bool
	// Namespace is the job namespace whose next execution "$next" means
	// ("" for jobs without one); it does not restrict a job id.
	Namespace string
}

// UpdateExecutionInput is an UpdateJobExecution request.
type UpdateExecutionInput struct {
	ThingName            string
	JobID                string
	Status               ExecutionStatus
	StatusDetails        map[string]string // nil leaves them unchanged
	ExpectedVersion      *int64
	ExecutionNumber      *int64
	StepTimeoutInMinutes *int64
	IncludeJobDocument   bool
}

// ExecutionOutput is an execution and, when asked for, its job document.
type ExecutionOutput struct {
	Execution *Execution // nil when nothing is pending ($next, start-next)
	Document  string
}

// CreateJobInput is a CreateJob request. Job carries every stored field the
// caller sets (JobID, Targets, Description, configs ...); the store fills in
// the rest.
type CreateJobInput struct {
	Job      Job
	Document string
	// Template, when set, is the template Job.JobTemplateArn names,
	// resolved by the caller because no store holds it (an AWS-managed
	// template); Document is then its document with Job.DocumentParameters
	// already substituted, and Template.Document the text before.
	Template *JobTemplate
}

// ListJobsInput filters and pages ListJobs.
type ListJobsInput struct {
	Status          JobStatus
	TargetSelection TargetSelection
	NamespaceID     string // only jobs of this namespace
	ThingGroupName  string // only jobs that target this thing group
	MaxResults      int
	NextToken       string
}

// ListJobsOutput is one page of jobs.
type ListJobsOutput struct {
	Jobs      []*Job
	NextToken string
}

// CancelJobInput is a CancelJob request.
type CancelJobInput struct {
	JobID      string
	Force      bool
	ReasonCode *string
	Comment    *string
}

// DeleteJobInput is a DeleteJob request.
type DeleteJobInput struct {
	JobID string
	Force bool
}

// ListExecutionsInput pages ListJobExecutionsForJob (JobID set) and
// ListJobExecutionsForThing (ThingName set, JobID optional).
type ListExecutionsInput struct {
	JobID       string
	ThingName   string
	Status      ExecutionStatus
	NamespaceID string // ListJobExecutionsForThing: only jobs of this namespace
	MaxResults  int
	NextToken   string
}

// ListExecutionsOutput is one page of executions.
type ListExecutionsOutput struct {
	Executions []*Execution
	NextToken  string
}

// CancelExecutionInput is a CancelJobExecution request.
type CancelExecutionInput struct {
	JobID           string
	ThingName       string
	Force           bool
	ExpectedVersion *int64
	StatusDetails   map[string]string
}

// DeleteExecutionInput is a DeleteJobExecution request.
type DeleteExecutionInput struct {
	JobID           string
	ThingName       string
	ExecutionNumber int64
	Force           bool
}

// Shared is implemented by backends that several broker nodes use at once
// (a shared database). A change committed on one node must reach the
// ChangeHandler of every node that serves devices of the changed thing, so
// such a store asks the node which things those are.
type Shared interface {
	Store
	// SetInterest installs the node's view of which things it serves.
	// Install it before serving traffic, with SetChangeHandler.
	SetInterest(Interest)
}

// Interest tells a Shared store which things this node has devices
// listening for, so that it can deliver other nodes' changes to them.
type Interest interface {
	// Has reports whether a client on this node subscribes to thing's
	// notify or notify-next topic.
	Has(thing string) bool
	// Things lists every thing Has is true for. After losing touch with
	// the other nodes (a dropped database connection), the store re-reads
	// the state of these things and hands over whatever changed meanwhile.
	Things() []string
}

// The interfaces below are optional: a Store implements those its backend
// can serve, and callers (the broker's metrics and backup endpoint) ask
// for them with a type assertion, never for a backend by name.

// HintBus carries a Shared store's change hints to the other nodes (a
// cluster's message system), in place of the store's own channel.
type HintBus interface {
	// Publish sends a hint to every other node, without waiting.
	Publish(hint []byte)
}

// HintRouter is implemented by Shared stores whose change hints can
// travel on a HintBus. A hint is only a hint: the node that receives one
// re-reads what it names, so hints may come late, twice or out of order,
// and Resync recovers from hints missed while the bus was cut off.
type HintRouter interface {
	// SetHintBus sends the store's hints on bus from now on.
	SetHintBus(bus HintBus)
	// Hint acts on a hint another node published.
	Hint(hint []byte)
	// Resync re-reads what other nodes may have changed while hints were
	// missed.
	Resync()
}

// GaugeReader computes the store-wide gauges the metrics report.
type GaugeReader interface {
	Gauges(ctx context.Context) (*Gauges, error)
}

// Counters are a store's running totals of its background work.
type Counters struct {
	TimersFired int64 // executions timed out by a timer
	// HasGC says whether the store collects value-log garbage; GCRuns
	// and GCRewrites count its collections and the files they rewrote.
	HasGC              bool
	GCRuns, GCRewrites int64
	// HasCommitDelay says whether the store's commits may wait for more
	// operations to join them (Badger's CommitDelay); CommitWaits counts
	// the commits that did.
	HasCommitDelay bool
	CommitWaits    int64
}

// CounterReader reports a store's Counters.
type CounterReader interface {
	Counters() Counters
}

// Backuper streams a consistent backup of the whole store to w while it
// keeps serving, and returns the version the backup is at.
type Backuper interface {
	Backup(ctx context.Context, w io.Writer) (uint64, error)
}

// RecoveryReporter reports what opening the store found damaged in its
// logs (Badger's write-ahead and value logs), for the metrics.
type RecoveryReporter interface {
	DamagedLogFiles() int
}
