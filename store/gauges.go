package store

// Gauges are the store-wide figures the metrics report at scrape time.
type Gauges struct {
	ExecutionsByStatus map[ExecutionStatus]int64 // latest execution of each (thing, job)
	JobsByStatus       map[JobStatus]int64
	TimersArmed        int64 // executions with a step or in-progress timer running
	RolloutBacklog     int64 // things still to be given an execution by rollouts
	LSMBytes           int64 // on-disk size of the index (where the backend has one)
	ValueLogBytes      int64 // on-disk size of the value log (where the backend has one)
}
