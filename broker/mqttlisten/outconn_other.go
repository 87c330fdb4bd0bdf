//go:build !unix

package mqttlisten

import (
	"net"
	"time"
)

// bufferWrites returns c as is: writes that never wait are built on unix
// sockets only (outconn.go).
func bufferWrites(c net.Conn, _ time.Duration) net.Conn { return c }
