package broker

import (
	"fmt"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/jobsbroker/jobsbroker/broker/metrics"
	"github.com/jobsbroker/jobsbroker/broker/sessions"
	"github.com/jobsbroker/jobsbroker/store"
)

// sessionCapabilities tells mochi the session expiry: mochi caps an MQTT 5
// client's session expiry interval to it (and says so in the CONNACK) and
// keeps an MQTT 3.1.1 session that long. Message expiry is left to the
// messages' own MQTT 5 interval: mochi's default maximum would delete every
// retained message and every queued message a day after it was published,
// where AWS IoT keeps retained messages until they are replaced.
func (b *Broker) sessionCapabilities(caps *mqtt.Capabilities) {
	caps.MaximumSessionExpiryInterval = uint32(b.cfg.sessionExpiry() / time.Second)
	caps.MaximumMessageExpiryInterval = 0
}

// addSessionsHook adds the hook that keeps sessions and retained messages
// in the store, after the hooks that consume publishes, and exposes its
// metrics.
func (b *Broker) addSessionsHook() error {
	st, ok := b.Store.(store.SessionStore)
	if !ok {
		return fmt.Errorf("the %s store keeps no MQTT sessions", b.cfg.Store)
	}
	_, shared := b.Store.(store.Shared)
	if err := b.MQTT.AddHook(b.Sessions, &sessions.Options{
		Server: b.MQTT, Store: st, Claim: shared, Expiry: b.cfg.sessionExpiry(),
		QueueLimit: b.cfg.MaxQueuedMessages, RetainedLimit: b.cfg.MaxRetainedMessages,
		RetainedMaxBytes: b.cfg.MaxRetainedSize, Identity: b.Auth.Identity, Clock: b.cfg.Clock, Replica: isReplica,
		Restored: b.watchRestored, Send: b.flow.Send, Sent: b.flow.Sent,
		Logger: b.log.With("component", "sessions"),
	}); err != nil {
		return fmt.Errorf("add sessions hook: %w", err)
	}
	b.sessionsUp.Store(b.Sessions)
	stats := b.Sessions.Stats()
	metrics.RegisterSessions(b.cfg.Registry, func() metrics.SessionCounts {
		return metrics.SessionCounts{
			Sessions: stats.Sessions.Load(), Connected: stats.Connected.Load(), Queued: stats.Queued.Load(),
			Dropped: stats.Dropped.Load(), ExpiredMessages: stats.ExpiredMessages.Load(), Expired: stats.Expired.Load(),
			Delivered: stats.Delivered.Load(), WriteErrors: stats.WriteErrors.Load(), Refused: stats.Refused.Load(),
		}
	}, st.SessionUsage, 5*time.Second)
	return nil
}
