package store

// Gauges are the store-wide figures the metrics report at scrape time.
type Gauges struct {
	ExecutionsByStatus map[ExecutionStatus]int64 // latest execution of each (thing, job)
	JobsByStatus       map[JobStatus]int64
	TimersArmed        int64 // executions with a step or in-progress timer running
	RolloutBacklog     int64 // things still to be given an execution by rollouts
	// SizeBytes is the on-disk size of the store by the backend's own
	// parts: Badger's lsm (its index) and vlog (its value log),
	// PostgreSQL's database.
	SizeBytes map[string]int64
}
