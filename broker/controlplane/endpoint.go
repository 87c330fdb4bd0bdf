package controlplane

import (
	"net"
	"slices"
)

// The ports a client assumes when DescribeEndpoint gives it a bare host
// name, as AWS does: MQTT over TLS on 8883, or 443 with ALPN (the AWS CRT
// and the AWS IoT Device Client), and HTTPS on 443. Plain MQTT and plain
// HTTP have none: a client given a bare host would connect with TLS.
var (
	MQTTPorts  = []string{"8883", "443"}
	HTTPSPorts = []string{"443"}
)

// EndpointAddress is the endpointAddress DescribeEndpoint returns for a
// listener bound to addr: host alone when the listener's port is one of
// standard, the ports clients assume for a bare host, so that it can be
// passed to an MQTT or HTTP client as AWS's is (AWS_IO_DNS_INVALID_NAME
// with "host:port"); host:port otherwise, since a self-hosted broker
// often listens elsewhere.
func EndpointAddress(host, addr string, standard ...string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || slices.Contains(standard, port) {
		return host
	}
	return net.JoinHostPort(host, port)
}
