package broker

import "github.com/jobsbroker/jobsbroker/broker/mqttlisten"

// Descriptors kept aside from the MQTT listeners' share of the process's
// limit: the store's files, the HTTP listeners and their clients, and the
// runtime's own.
const reservedDescriptors = 1024

// mqttListeners returns the ids of the MQTT listeners that are on.
func (c *Config) mqttListeners() []string {
	var ids []string
	for _, l := range []struct{ id, addr string }{
		{listenerMQTT, c.MQTTAddr}, {listenerMQTTTLS, c.MQTTTLSAddr},
		{listenerMQTTALPN, c.MQTTALPNAddr}, {listenerWS, c.WebSocketAddr},
	} {
		if l.addr != Off && l.addr != "" {
			ids = append(ids, l.id)
		}
	}
	return ids
}

// maxConnections is the connection limit of each MQTT listener: the
// setting, or else an equal share of the file descriptors the process
// may open, less reservedDescriptors, so that clients cannot take the
// descriptors the store and the HTTP APIs need (0: no limit).
func (c *Config) maxConnections() int {
	switch {
	case c.MaxConnections > 0:
		return c.MaxConnections
	case c.MaxConnections < 0:
		return 0
	}
	return defaultMaxConnections(mqttlisten.DescriptorLimit(), len(c.mqttListeners()))
}

// defaultMaxConnections shares limit descriptors among n listeners
// (limit 0: unknown, no limit).
func defaultMaxConnections(limit uint64, n int) int {
	if limit == 0 || n == 0 {
		return 0
	}
	avail := int64(limit) - reservedDescriptors
	if avail < int64(64*n) {
		return 64 // a tiny limit: still serve someone
	}
	return int(min(avail/int64(n), 1<<30))
}
