package mqttlisten

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Backoff between failed accepts, as net/http's: from 5 ms, doubling, to
// at most a second.
const (
	acceptFirstWait = 5 * time.Millisecond
	acceptMaxWait   = time.Second
)

// retryListener is a net.Listener whose Accept survives errors: when the
// process is out of file descriptors (EMFILE), the kernel out of memory
// for sockets or a connection aborted before it was accepted, Accept waits
// (5 ms, doubling to 1 s) and tries again, instead of returning an error
// that would end the listener for good. It returns only a connection, or
// net.ErrClosed once the listener is closed.
//
// A burst of failures is logged once, with its first error, and once
// more when accepting works again; every failure is counted (onError),
// and while the burst lasts Failing reports it (for /readyz). A burst
// lasts as long as failures keep coming: a listener whose last failure is
// older than the longest wait is waiting for a client, not failing (were
// it reported unready until the next client came, a load balancer that
// believed it would send none).
type retryListener struct {
	net.Listener
	id      string
	log     *slog.Logger
	onError func() // counts one failed accept; may be nil

	closeOnce sync.Once
	closed    chan struct{}

	mu       sync.Mutex
	failing  error // the first error of the burst in progress, nil when accepting
	since    time.Time
	last     time.Time // the burst's latest failure
	failures int
}

func newRetryListener(ln net.Listener, id string, log *slog.Logger, onError func()) *retryListener {
	return &retryListener{Listener: ln, id: id, log: log, onError: onError, closed: make(chan struct{})}
}

// Accept waits for and returns the next connection.
func (l *retryListener) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.recovered()
			return c, nil
		}
		select {
		case <-l.closed:
			return nil, net.ErrClosed
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		wait = min(max(2*wait, acceptFirstWait), acceptMaxWait)
		l.failed(err, wait)
		select {
		case <-time.After(wait):
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
}

func (l *retryListener) failed(err error, wait time.Duration) {
	if l.onError != nil {
		l.onError()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures++
	l.last = time.Now()
	if l.failing != nil {
		return
	}
	l.failing, l.since = err, l.last
	l.log.Error("listener cannot accept connections; retrying until it can", "listener", l.id,
		"error", err, "retry_in", wait)
}

func (l *retryListener) recovered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing == nil {
		return
	}
	l.log.Info("listener accepts connections again", "listener", l.id, "failed_accepts", l.failures,
		"for", time.Since(l.since).Round(time.Millisecond))
	l.failing, l.failures = nil, 0
}

// Failing reports the error of a burst of failed accepts in progress, nil
// while the listener accepts.
func (l *retryListener) Failing() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing == nil || time.Since(l.last) > 2*acceptMaxWait {
		return nil
	}
	return fmt.Errorf("not accepting connections for %v (%d failed accepts): %w",
		time.Since(l.since).Round(time.Second), l.failures, l.failing)
}

// Close closes the listener and ends a wait between retries.
func (l *retryListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}
