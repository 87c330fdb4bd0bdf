package broker

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jobsbroker/jobsbroker/broker/logsample"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultMaxSubscriptions is how many subscriptions one MQTT client may
// hold, as AWS IoT's default quota per connection.
const DefaultMaxSubscriptions = 50

// protocolHook makes mochi behave as the MQTT specifications and AWS IoT
// say where mochi v2.7.9 does not:
//
//   - MQTT 3.1.1 has no DISCONNECT from the server. mochi sends one on
//     shutdown, on session takeover and when it refuses a QoS 1 publish;
//     the AWS CRT logs "Unhandled packet type received" and libmosquitto
//     a protocol error. The hook closes such a connection instead, without
//     a byte; MQTT 5 clients keep their DISCONNECT with its reason code.
//   - Topic filters are checked as the specification says (MQTT 3.1.1
//     §4.7.1, MQTT 5 §4.7.1): "#" only as the whole last level, "+" only
//     as a whole level. mochi grants a/b# and a/+x.
//   - A client holds at most maxSubs subscriptions (AWS IoT's quota).
//   - Packet identifiers: the client and the server pick theirs
//     independently (MQTT 3.1.1 §2.3.1), but mochi keeps both directions
//     in one in-flight map. A client's SUBSCRIBE or UNSUBSCRIBE whose id
//     equals that of a message the server sent it and it has not yet
//     acknowledged (the usual case right after a session resumes) is then
//     answered 0x91, packet identifier in use; a QoS 1 PUBLISH with such an
//     id even makes mochi forget the server's message. The hook gives such
//     a packet another id, free in the map, for mochi to work with, and
//     puts the client's own id back in the acknowledgement it is answered
//     with.
type protocolHook struct {
	mqtt.HookBase
	maxSubs    int // negative: no limit
	log        *slog.Logger
	refusedLog *logsample.Sampler

	aliases  sync.Map     // *mqtt.Client -> *idAliases, while it has any
	nAliased atomic.Int32 // clients in aliases: the encoding path skips the lookup at 0
}

// idAliases maps the ids the hook substituted to the client's own.
type idAliases struct {
	mu sync.Mutex
	m  map[uint16]uint16 // substitute -> the client's id
}

func (h *protocolHook) ID() string { return "jobsbroker-protocol" }

func (h *protocolHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnPacketRead,
		mqtt.OnPacketEncode,
		mqtt.OnSubscribe,
		mqtt.OnSubscribed,
		mqtt.OnDisconnect,
	}, []byte{b})
}

// OnPacketEncode closes an MQTT 3.1.1 connection that mochi is about to
// send a DISCONNECT (the write then fails and sends nothing), and puts a
// client's own packet id back into the acknowledgement of a packet that
// was given a substitute.
func (h *protocolHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Disconnect:
		if cl.Properties.ProtocolVersion < 5 {
			cl.Stop(packets.Code{Code: pk.ReasonCode, Reason: pk.Properties.ReasonString})
		}
	case packets.Suback, packets.Unsuback, packets.Puback, packets.Pubrec:
		if h.nAliased.Load() > 0 {
			pk.PacketID = h.restoreID(cl, pk.PacketID)
		}
	}
	return pk
}

// OnPacketRead gives a client's packet a substitute id when its own is
// that of a message the server sent and the client has not acknowledged.
func (h *protocolHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Subscribe, packets.Unsubscribe:
	case packets.Publish:
		if pk.FixedHeader.Qos == 0 {
			return pk, nil
		}
	default:
		return pk, nil
	}
	if pk.PacketID == 0 {
		return pk, nil // malformed: mochi refuses it
	}
	held, ok := cl.State.Inflight.Get(pk.PacketID)
	if !ok || held.FixedHeader.Type != packets.Publish {
		// Free, or the client's own QoS 2 exchange still open: then the
		// client did reuse its id, and 0x91 is right.
		return pk, nil
	}
	v, loaded := h.aliases.LoadOrStore(cl, &idAliases{m: map[uint16]uint16{}})
	a := v.(*idAliases)
	a.mu.Lock()
	defer a.mu.Unlock()
	if !loaded || len(a.m) == 0 {
		h.nAliased.Add(1)
	}
	// From the top of the id space down: mochi hands out its own ids
	// upwards from where it last stopped, so a substitute is the id it is
	// least likely to pick meanwhile.
	for id := uint16(65535); id > 0; id-- {
		if _, used := a.m[id]; used {
			continue
		}
		if _, used := cl.State.Inflight.Get(id); used {
			continue
		}
		a.m[id] = pk.PacketID
		pk.PacketID = id
		return pk, nil
	}
	if len(a.m) == 0 {
		h.nAliased.Add(-1)
	}
	return pk, nil // every id in flight: mochi answers 0x91
}

// restoreID returns the client's own id for a substitute, and forgets
// the substitute.
func (h *protocolHook) restoreID(cl *mqtt.Client, id uint16) uint16 {
	v, ok := h.aliases.Load(cl)
	if !ok {
		return id
	}
	a := v.(*idAliases)
	a.mu.Lock()
	defer a.mu.Unlock()
	own, ok := a.m[id]
	if !ok {
		return id
	}
	delete(a.m, id)
	if len(a.m) == 0 {
		h.nAliased.Add(-1)
	}
	return own
}

// OnDisconnect forgets the client's substitutes (a refused publish, for
// one, is never acknowledged).
func (h *protocolHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	v, ok := h.aliases.LoadAndDelete(cl)
	if !ok {
		return
	}
	a := v.(*idAliases)
	a.mu.Lock()
	if len(a.m) > 0 {
		h.nAliased.Add(-1)
	}
	a.m = nil
	a.mu.Unlock()
}

// Filters the hook has mochi refuse. mochi refuses an empty filter with
// 0x8F (topic filter invalid); a filter over the quota is marked with a
// filter no client can send (one it would have refused as invalid), so
// that OnSubscribed can answer it 0x97 instead.
const (
	invalidFilter = ""
	overQuota     = "#/over-quota"
)

// OnSubscribe refuses invalid filters and those beyond the client's
// subscription quota. Filters the client holds already replace their
// subscription and do not count again.
func (h *protocolHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	held := cl.State.Subscriptions.Len()
	fresh := map[string]bool{}
	filters := make(packets.Subscriptions, len(pk.Filters))
	for i, sub := range pk.Filters {
		filters[i] = sub
		switch {
		case !validFilter(sub.Filter):
			h.log.Debug("refused an invalid topic filter", "client", cl.ID, "filter", sub.Filter)
			filters[i].Filter = invalidFilter
		case h.maxSubs < 0:
		case fresh[sub.Filter]:
		default:
			if _, ok := cl.State.Subscriptions.Get(sub.Filter); ok {
				continue
			}
			if held+len(fresh) >= h.maxSubs {
				h.refusedLog.Log(h.log, slog.LevelInfo, "refused a subscription over the quota", "client", cl.ID, "filter", sub.Filter, "limit", h.maxSubs)
				filters[i].Filter = overQuota
				continue
			}
			fresh[sub.Filter] = true
		}
	}
	pk.Filters = filters
	return pk
}

// OnSubscribed answers the filters over the quota 0x97 (quota exceeded)
// where MQTT 5 can say so; MQTT 3.1.1 has only 0x80.
func (h *protocolHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if cl.Properties.ProtocolVersion < 5 {
		return
	}
	for i, sub := range pk.Filters {
		if sub.Filter == overQuota && i < len(reasonCodes) {
			reasonCodes[i] = packets.ErrQuotaExceeded.Code // the SUBACK's own slice
		}
	}
}

// validFilter checks a topic filter as MQTT 3.1.1 §4.7 and MQTT 5 §4.7
// say: not empty, no U+0000, "#" only as the whole last level and "+" only
// as a whole level; in a shared subscription ($share/{group}/{filter}) the
// group is not empty and has no wildcard, and the filter follows the same
// rules.
func validFilter(filter string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		group, f, ok := strings.Cut(rest, "/")
		if !ok || group == "" || strings.ContainsAny(group, "+#") {
			return false
		}
		filter = f
	}
	if filter == "" || strings.ContainsRune(filter, 0) {
		return false
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return false
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return false
		}
	}
	return true
}
