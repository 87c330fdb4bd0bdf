//go:build !unix

package mqttlisten

// DescriptorLimit is unknown here: no default connection limit.
func DescriptorLimit() uint64 { return 0 }
