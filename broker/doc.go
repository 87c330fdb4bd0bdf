// Package broker assembles a jobsbroker: the mochi MQTT server with its
// listeners and hooks (jobshook among them), the store the configuration
// names (opened through store/backends; the broker does not know which
// backend it runs on, and asks the store for what it can do through
// store's optional interfaces), and the HTTP listeners of the AWS IoT
// control-plane API and of the iot-jobs-data API. cmd/jobsbroker only
// turns configuration into a Config and calls New, Start and Shutdown.
//
// Where things go:
//
//   - A setting: a field of Config and its check in config.go, a flag in
//     cmd/jobsbroker/config.go, a row in the README's flags table.
//   - An MQTT listener: broker/mqttlisten, added in addMQTTListeners
//     (security.go), which gives it its TLS configuration.
//   - An identity mode or an access rule: broker/auth, the one hook that
//     decides every access; anything mochi publishes for a client (a will)
//     passes the same decision.
//   - A device operation over MQTT: jobshook (topics parses its topic);
//     the same operation over HTTP: broker/dataplane. Both call the same
//     store.Store method, so a change made either way notifies alike.
//   - A control-plane operation: broker/controlplane, with the AWS shapes
//     of broker/awsapi; the web console (broker/console) calls it in
//     process instead of repeating its validation.
//   - A job rule: store/engine, written once for every backend.
//   - AWS IoT commands: the model in store (commands.go), the operations
//     in store/engine (commands.go), the API shapes in
//     broker/controlplane/commands.go and broker/dataplane/commands.go,
//     the device side in jobshook/commands.go, the topics in
//     topics/commands.go.
//   - MQTT state that outlives a connection (sessions, retained messages):
//     broker/sessions.
//   - What passes between the nodes of a cluster (publishes, retained
//     messages, client-ID takeover, the store's change hints): broker/cluster,
//     wired in clusternode.go.
package broker
