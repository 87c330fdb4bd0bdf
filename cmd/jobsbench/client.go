package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// ClientOptions configures a Client.
type ClientOptions struct {
	// ClientID is the MQTT client identifier (the thing name, for devices).
	ClientID string
	// KeepAlive is announced in CONNECT; the client does not ping by itself
	// (see PingIfIdle). Zero disables the broker's keep-alive timeout.
	KeepAlive time.Duration
	// OnMessage is called on the client's reader goroutine for every
	// PUBLISH the broker delivers, after its PUBACK has been queued. The
	// message (TopicName and Payload included) aliases the read buffer and
	// is valid only during the call. Publishes made from OnMessage go out
	// in the same write as the PUBACK.
	OnMessage func(c *Client, m *packets.Packet)
	// DialTimeout bounds the TCP connect and the CONNACK (default 10 s).
	DialTimeout time.Duration
	// Persistent connects with clean session off: the broker keeps the
	// device's session, and what it is owed, after it leaves.
	Persistent bool
}

// Client is a minimal MQTT 3.1.1 client for load generation: a clean (or
// persistent) session over one TCP connection with TCP_NODELAY, QoS 0 and 1 publishes,
// SUBSCRIBE, PINGREQ, and automatic PUBACKs of the broker's QoS 1
// deliveries. mochi's packets package encodes and decodes the packets. It
// runs one goroutine, the reader. Writes go out under a mutex; while the
// reader works through packets that have already arrived, what it and
// OnMessage write is gathered and sent in one write system call.
type Client struct {
	opts ClientOptions
	conn net.Conn
	r    *packetReader

	wmu      sync.Mutex
	wbuf     bytes.Buffer   // encoded packets not yet written
	wpk      packets.Packet // the PUBLISH or PUBACK being encoded
	batching bool           // the reader is handling buffered packets: defer the write
	nextID   uint16
	wErr     error

	onMessage atomic.Pointer[func(c *Client, m *packets.Packet)]
	lastWrite atomic.Int64 // mono() of the last write
	subMu     sync.Mutex   // one SUBSCRIBE at a time
	subacks   chan []byte
	closing   atomic.Bool
	done      chan struct{}
	errMu     sync.Mutex
	err       error
}

// Dial connects to an MQTT broker at addr and completes the MQTT handshake.
func Dial(ctx context.Context, addr string, opts ClientOptions) (*Client, error) {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		if err := tc.SetNoDelay(true); err != nil {
			conn.Close()
			return nil, fmt.Errorf("set TCP_NODELAY: %w", err)
		}
	}
	c, err := connect(ctx, conn, opts)
	if err != nil {
		return nil, fmt.Errorf("connect %s as %s: %w", addr, opts.ClientID, err)
	}
	return c, nil
}

// connect completes the MQTT handshake on conn before ctx ends and starts
// the reader; it closes conn if it fails.
func connect(ctx context.Context, conn net.Conn, opts ClientOptions) (*Client, error) {
	c := &Client{
		opts:    opts,
		conn:    conn,
		r:       newPacketReader(conn),
		subacks: make(chan []byte, 1),
		done:    make(chan struct{}),
		nextID:  uint16(rand.IntN(1 << 16)),
	}
	c.wbuf.Grow(512)
	if opts.OnMessage != nil {
		c.SetOnMessage(opts.OnMessage)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	err := c.handshake()
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	go c.read()
	return c, nil
}

func (c *Client) handshake() error {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: mqtt311,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            !c.opts.Persistent,
			Keepalive:        uint16(min(c.opts.KeepAlive/time.Second, 65535)),
			ClientIdentifier: c.opts.ClientID,
		},
	}
	pk.ConnectEncode(&c.wbuf) // never fails
	_, err := c.conn.Write(c.wbuf.Bytes())
	c.wbuf.Reset()
	if err != nil {
		return err
	}
	c.lastWrite.Store(mono())
	ack, err := c.r.readPacket()
	if err != nil {
		return fmt.Errorf("read CONNACK: %w", err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		return fmt.Errorf("expected CONNACK, got %s", packets.PacketNames[ack.FixedHeader.Type])
	}
	if ack.ReasonCode != 0 {
		return fmt.Errorf("broker refused the connection (CONNACK return code %d)", ack.ReasonCode)
	}
	return nil
}

// SetOnMessage replaces the OnMessage handler; it is safe to call while
// messages arrive.
func (c *Client) SetOnMessage(fn func(c *Client, m *packets.Packet)) {
	c.onMessage.Store(&fn)
}

// ID is the client identifier.
func (c *Client) ID() string { return c.opts.ClientID }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended: nil while it runs and after Close.
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// read is the reader goroutine.
func (c *Client) read() {
	err := c.readLoop()
	if c.closing.Load() {
		err = nil
	} else if err == nil {
		err = io.EOF
	}
	c.errMu.Lock()
	c.err = err
	c.errMu.Unlock()
	c.conn.Close()
	close(c.done)
}

func (c *Client) readLoop() error {
	for {
		pk, err := c.r.readPacket()
		if err != nil {
			return err
		}
		switch pk.FixedHeader.Type {
		case packets.Publish:
			c.wmu.Lock()
			c.batching = true
			if pk.FixedHeader.Qos > 0 { // QoS 2 is never granted by our subscriptions
				c.encodeLocked(packets.Puback, 0, pk.PacketID, "", nil)
			}
			c.wmu.Unlock()
			if fn := c.onMessage.Load(); fn != nil {
				(*fn)(c, pk)
			}
		case packets.Puback, packets.Pingresp:
		case packets.Suback:
			c.subacks <- append([]byte(nil), pk.ReasonCodes...)
		default:
			return fmt.Errorf("unexpected %s packet from the broker", packets.PacketNames[pk.FixedHeader.Type])
		}
		if !c.r.packetBuffered() {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
}

// flush ends a batch: it writes what was gathered.
func (c *Client) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.batching = false
	return c.writeLocked()
}

func (c *Client) writeLocked() error {
	if c.wErr != nil {
		c.wbuf.Reset()
		return c.wErr
	}
	if c.batching || c.wbuf.Len() == 0 {
		return nil
	}
	_, err := c.conn.Write(c.wbuf.Bytes())
	c.wbuf.Reset()
	c.lastWrite.Store(mono())
	if err != nil {
		c.wErr = fmt.Errorf("write: %w", err)
		c.conn.Close() // the reader notices and reports
		return c.wErr
	}
	return nil
}

// Publish sends a PUBLISH; QoS 1 messages get the next packet id. It
// returns once the packet is written (or queued behind the reader's
// batch).
func (c *Client) Publish(topic string, payload []byte, qos byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var id uint16
	if qos > 0 {
		id = c.packetIDLocked()
	}
	c.encodeLocked(packets.Publish, qos, id, topic, payload)
	return c.writeLocked()
}

// encodeLocked appends a PUBLISH or a PUBACK to wbuf. It encodes c.wpk
// rather than a new Packet: zeroing the 800 bytes of a Packet for every
// packet costs about as much as mochi's encoding of a PUBACK.
func (c *Client) encodeLocked(typ, qos byte, id uint16, topic string, payload []byte) {
	pk := &c.wpk
	pk.FixedHeader = packets.FixedHeader{Type: typ, Qos: qos}
	pk.ProtocolVersion = mqtt311
	pk.PacketID, pk.TopicName, pk.Payload = id, topic, payload
	if typ == packets.Publish {
		pk.PublishEncode(&c.wbuf) // fails only at QoS > 0 without a packet id
	} else {
		pk.PubackEncode(&c.wbuf) // never fails
	}
	pk.TopicName, pk.Payload = "", nil // do not keep the caller's memory
}

func (c *Client) packetIDLocked() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// Subscribe subscribes to one topic filter and waits for the SUBACK.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte) error {
	return c.SubscribeAll(ctx, []string{filter}, qos)
}

// SubscribeAll subscribes to topic filters in one SUBSCRIBE and waits for
// the SUBACK.
func (c *Client) SubscribeAll(ctx context.Context, filters []string, qos byte) error {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.wmu.Lock()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, // the flags MQTT requires of a SUBSCRIBE
		ProtocolVersion: mqtt311,
		PacketID:        c.packetIDLocked(),
	}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: qos})
	}
	pk.SubscribeEncode(&c.wbuf) // fails only without a packet id
	err := c.writeLocked()
	c.wmu.Unlock()
	what := filters[0]
	if len(filters) > 1 {
		what = fmt.Sprintf("%s and %d more", filters[0], len(filters)-1)
	}
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", what, err)
	}
	select {
	case codes := <-c.subacks:
		if len(codes) != len(filters) || slices.ContainsFunc(codes, func(c byte) bool { return c > 2 }) {
			return fmt.Errorf("subscribe %s: refused (return codes %v)", what, codes)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("subscribe %s: connection closed: %w", what, c.Err())
	case <-ctx.Done():
		return fmt.Errorf("subscribe %s: %w", what, ctx.Err())
	}
}

// PingIfIdle sends a PINGREQ if nothing was written for idle.
func (c *Client) PingIfIdle(idle time.Duration) error {
	if time.Duration(mono()-c.lastWrite.Load()) < idle {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}, ProtocolVersion: mqtt311}
	pk.PingreqEncode(&c.wbuf) // never fails
	return c.writeLocked()
}

// Close sends DISCONNECT, closes the connection and waits for the reader
// to end.
func (c *Client) Close() error {
	if c.closing.Swap(true) {
		<-c.done
		return nil
	}
	c.wmu.Lock()
	c.batching = false
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: mqtt311}
	pk.DisconnectEncode(&c.wbuf) // never fails
	c.writeLocked()
	c.wmu.Unlock()
	err := c.conn.Close()
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// raiseFileLimit lifts the soft limit on open files to the hard limit, for
// many thousands of connections; child processes (the broker) inherit it.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// monoBase anchors mono.
var monoBase = time.Now()

// mono is a monotonic clock in nanoseconds since the process started.
func mono() int64 { return int64(time.Since(monoBase)) }
