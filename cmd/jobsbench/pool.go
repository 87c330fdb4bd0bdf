package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// dialer opens many connections with bounded concurrency and rate.
type dialer struct {
	// addrs are the brokers' MQTT addresses: the i-th connection goes to
	// addrs[i % len(addrs)].
	addrs []string
	// concurrency is how many connection attempts may be in flight.
	concurrency int
	// rate caps new connections per second (0: no cap).
	rate float64
	// attempts is how often one connection is tried before giving up.
	attempts int
	// connected counts established connections (for progress displays).
	connected atomic.Int64
}

// dialAll connects n clients, opts(i) configuring the i-th, and then runs
// setup(i, c) on each (a subscription, say). On any failure it closes what
// it opened and returns the first error.
func (d *dialer) dialAll(ctx context.Context, n int, opts func(i int) ClientOptions, setup func(i int, c *Client) error) ([]*Client, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	clients := make([]*Client, n)
	sem := make(chan struct{}, max(1, d.concurrency))
	var tick *time.Ticker
	if d.rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / d.rate))
		defer tick.Stop()
	}
	var wg sync.WaitGroup
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := d.dial(ctx, i, opts(i))
			if err == nil && setup != nil {
				if err = setup(i, c); err != nil {
					c.Close()
				}
			}
			if err != nil {
				cancel(err)
				return
			}
			clients[i] = c
			d.connected.Add(1)
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		closeAll(clients)
		return nil, err
	}
	return clients, nil
}

// dial connects one client, retrying briefly: under a burst of connects
// the listen backlog can overflow.
func (d *dialer) dial(ctx context.Context, i int, o ClientOptions) (*Client, error) {
	addr := d.addrs[i%len(d.addrs)]
	var err error
	for a := 0; a < max(1, d.attempts); a++ {
		if a > 0 {
			select {
			case <-time.After(time.Duration(a) * 200 * time.Millisecond):
			case <-ctx.Done():
				return nil, errors.Join(err, ctx.Err())
			}
		}
		var c *Client
		if c, err = Dial(ctx, addr, o); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("after %d attempts: %w", max(1, d.attempts), err)
}

// closeAll closes every client (nil entries are skipped), in parallel.
func closeAll(clients []*Client) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.Close()
		}()
	}
	wg.Wait()
}

// keepAlive pings idle clients until ctx ends, so that long setups and
// runs do not trip the broker's keep-alive timeout.
func keepAlive(ctx context.Context, clients func() []*Client, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, c := range clients() {
				if c != nil {
					c.PingIfIdle(every / 2)
				}
			}
		}
	}
}
