package faults

import (
	"bytes"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ConnectHook is the mochi hook that carries out RefuseConnect faults.
// mochi asks every hook's OnConnect before it authenticates a client, so a
// refused CONNECT never reaches the broker's authentication.
type ConnectHook struct {
	mqtt.HookBase
	set *Set
}

// NewConnectHook returns the hook for set.
func NewConnectHook(set *Set) *ConnectHook { return &ConnectHook{set: set} }

// ID returns the hook's identifier.
func (h *ConnectHook) ID() string { return "jobs-faults-connect" }

// Provides says the hook handles OnConnect.
func (h *ConnectHook) Provides(b byte) bool { return bytes.Contains([]byte{mqtt.OnConnect}, []byte{b}) }

// connackCodes are the CONNACKs of ConnectCodes, by protocol version.
var connackCodes = map[string][2]packets.Code{
	"NotAuthorized":     {packets.Err3NotAuthorized, packets.ErrNotAuthorized},
	"ServerUnavailable": {packets.Err3ServerUnavailable, packets.ErrServerUnavailable},
}

// OnConnect refuses the CONNECT when a fault says so: with the fault's
// CONNACK code, or by closing the connection without one.
func (h *ConnectHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if !h.set.Armed() {
		return nil
	}
	f := h.set.Connect(cl.ID)
	if f == nil {
		return nil
	}
	h.set.Fired(Event{Thing: cl.ID, ClientID: cl.ID, Fault: *f})
	if codes, ok := connackCodes[f.Code]; ok {
		code := codes[0]
		if cl.Properties.ProtocolVersion == 5 {
			code = codes[1]
		}
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code.Code})
	}
	cl.Stop(ErrRefused)
	return ErrRefused
}
