package broker

import (
	"fmt"
	"net/http"

	"github.com/jobsbroker/jobsbroker/broker/console"
	"github.com/jobsbroker/jobsbroker/broker/sigv4"
	"github.com/jobsbroker/jobsbroker/broker/traffic"
)

// addTrafficHook records each thing's recent jobs messages for the
// console. It must come before the jobs hook, which consumes requests.
func (b *Broker) addTrafficHook() error {
	b.Traffic = traffic.New(traffic.Options{})
	if err := b.MQTT.AddHook(traffic.NewHook(b.Traffic, b.trafficSinks()...), nil); err != nil {
		return fmt.Errorf("add traffic hook: %w", err)
	}
	return nil
}

// mountConsole serves the web console at /console/ on the API listener.
// Its actions go through api, the control plane's handler, without the
// SigV4 check: the console's own login stands in for it.
func (b *Broker) mountConsole(mux *http.ServeMux, api http.Handler) error {
	opts := console.Options{
		Store: b.Store, API: api, Region: b.cfg.Region, Account: b.cfg.Account, Clock: b.cfg.Clock,
		Logger: b.log.With("component", "console"), Metrics: b.cfg.Registry, Traffic: b.Traffic,
		Clients: b.thingClients, Listening: b.Jobs.Has, Secure: b.certs != nil, NodeID: b.cfg.NodeID,
	}
	if b.controlSig != nil {
		opts.Credentials = func() *sigv4.Credentials { return b.controlSig.Credentials() }
	}
	users, err := b.loadConsoleUsers()
	if err != nil {
		return err
	}
	opts.Users = users
	con, err := console.New(opts)
	if err != nil {
		return err
	}
	b.console = con
	b.feed.Subscribe(con.Changed)
	b.api.RegisterOnShutdown(con.Close)
	mux.Handle(console.Prefix, con)
	return nil
}

// loadConsoleUsers reads the console password file, nil without one.
func (b *Broker) loadConsoleUsers() (*console.Users, error) {
	if b.cfg.ConsolePasswordFile == "" {
		return nil, nil
	}
	return console.LoadUsers(b.cfg.ConsolePasswordFile)
}

// thingClients lists the clients connected to this node whose client id
// is the thing's name (the AWS IoT convention, and the rule under
// identity mtls).
func (b *Broker) thingClients(thing string) []string {
	if cl, ok := b.MQTT.Clients.Get(thing); ok && !cl.Closed() {
		return []string{cl.ID}
	}
	return nil
}
