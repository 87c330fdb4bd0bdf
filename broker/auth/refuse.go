package auth

import (
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// refusal is why a connection is refused: the MQTT 5 CONNACK reason, and
// the detail for the log.
type refusal struct {
	code packets.Code
	err  error
	// quiet logs the refusal at debug level: one a connection attempt
	// would flood the log (refusals for waiting, during a guessing run).
	quiet bool
}

// v3Codes are the MQTT 3.1.1 return codes of the reasons the hook refuses
// connections for (MQTT 3.1.1 has five; MQTT 5's are finer).
var v3Codes = map[byte]packets.Code{
	packets.ErrClientIdentifierNotValid.Code: packets.Err3ClientIdentifierNotValid,   // 0x02 identifier rejected
	packets.ErrBadUsernameOrPassword.Code:    packets.ErrMalformedUsernameOrPassword, // 0x04 bad user name or password
	packets.ErrNotAuthorized.Code:            packets.Err3NotAuthorized,              // 0x05 not authorized
	packets.ErrQuotaExceeded.Code:            packets.Err3ServerUnavailable,          // 0x03: try again later
	packets.ErrConnectionRateExceeded.Code:   packets.Err3ServerUnavailable,
}

// refuse logs a refused connection and answers it with the CONNACK of its
// reason, then closes it. mochi would answer every refusal "bad user name
// or password", which misleads a device whose credentials are fine (a
// client ID that is not its certificate's thing, a will it may not
// publish): the hook writes the CONNACK itself, and mochi's own finds the
// connection closed and is not sent. It returns false, what
// OnConnectAuthenticate returns for a refusal.
func (h *Hook) refuse(cl *mqtt.Client, r *refusal) bool {
	if r.quiet {
		h.log.Debug("refused an MQTT connection", "client", cl.ID, "remote", cl.Net.Remote, "listener", cl.Net.Listener,
			"reason", r.code.Reason, "error", r.err)
	} else {
		h.refusedLog.Log(h.log, slog.LevelInfo, "refused an MQTT connection", "client", cl.ID, "remote", cl.Net.Remote,
			"listener", cl.Net.Listener, "reason", r.code.Reason, "error", r.err)
	}
	code := r.code
	if cl.Properties.ProtocolVersion < 5 {
		code = v3Codes[code.Code]
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code.Code}
	if cl.Properties.ProtocolVersion == 5 {
		ack.Properties.ReasonString = r.code.Reason
	}
	_ = cl.WritePacket(ack)
	cl.Stop(r.code)
	return false
}
