// Package store owns the AWS IoT Jobs model: jobs, job executions, their
// statuses and the transitions between them, the validation rules of every
// field, and the Store interface through which the MQTT hook and the HTTP
// APIs run operations.
//
// The interface is expressed as operations (StartNextPendingJobExecution,
// UpdateJobExecution, CreateJob, CancelJob, ...), never as keys, so that each
// backend can make every operation atomic in its own way. The rules that do
// not depend on a backend (which transitions a device may make, how
// versionNumber moves, which execution is next, when notify and notify-next
// are due) are pure functions in this package, shared by every backend and
// tested once.
//
// store/engine writes the operations once over the record-level
// transactions of a backend: store/badger (embedded) and store/postgres
// (shared by several broker nodes). store/backends opens the one a
// configuration names; store/storetest holds the contract suite every
// backend must pass.
//
// Beside jobs the package owns AWS IoT commands (commands.go): commands,
// their executions, the execution status machine, the validation of
// commands, parameters and device reports, and the substitution of payload
// templates. CommandStore is their interface; store/engine implements it
// over backends that implement engine.CommandBackend (both do), with its
// own records and its own timer index.
package store
