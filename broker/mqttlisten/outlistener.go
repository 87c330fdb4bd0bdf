package mqttlisten

import (
	"net"
	"time"
)

// outListener hands out its connections with writes that never wait.
type outListener struct {
	net.Listener
	timeout time.Duration
}

func (l outListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return bufferWrites(c, l.timeout), nil
}
