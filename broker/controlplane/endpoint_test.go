package controlplane_test

import (
	"testing"

	"github.com/jobsbroker/jobsbroker/broker/controlplane"
)

// TestEndpointAddress: a bare host name on the ports clients assume, as
// AWS returns it; host:port anywhere else.
func TestEndpointAddress(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		standard []string
		want     string
	}{
		{"[::]:8883", controlplane.MQTTPorts, "iot.example.com"},
		{"0.0.0.0:443", controlplane.MQTTPorts, "iot.example.com"},
		{"127.0.0.1:18883", controlplane.MQTTPorts, "iot.example.com:18883"},
		{"[::]:1883", nil, "iot.example.com:1883"},
		{"[::]:8883", nil, "iot.example.com:8883"}, // plain MQTT on 8883: a bare host would mean TLS
		{"[::]:443", controlplane.HTTPSPorts, "iot.example.com"},
		{"[::]:8081", controlplane.HTTPSPorts, "iot.example.com:8081"},
		{"[::]:443", nil, "iot.example.com:443"}, // plain HTTP on 443
	} {
		if got := controlplane.EndpointAddress("iot.example.com", tc.addr, tc.standard...); got != tc.want {
			t.Errorf("EndpointAddress(%q, %v) = %q, want %q", tc.addr, tc.standard, got, tc.want)
		}
	}
}
