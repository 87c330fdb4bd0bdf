//go:build unix

package mqttlisten

import "syscall"

// DescriptorLimit returns the process's soft RLIMIT_NOFILE (which the Go
// runtime raises to the hard limit at start), 0 when unknown or unlimited.
func DescriptorLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur >= 1<<62 {
		return 0
	}
	return rl.Cur
}
