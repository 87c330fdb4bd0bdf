//go:build !unix

package broker

// descriptorLimit is unknown here: no default connection limit.
func descriptorLimit() uint64 { return 0 }
