package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/jobsbroker/jobsbroker/broker/auth"
	"github.com/jobsbroker/jobsbroker/broker/certs"
	"github.com/jobsbroker/jobsbroker/broker/sigv4"
	"github.com/jobsbroker/jobsbroker/broker/throttle"
)

// Off, given as a listener's address, turns the listener off.
const Off = "off"

// ALPN protocols the MQTT TLS listeners offer. AWS IoT's port 443 takes
// MQTT under x-amzn-mqtt-ca, and clients built on the AWS CRT (the AWS IoT
// Device Client among them) always ask for it.
const (
	alpnAWSMQTT = "x-amzn-mqtt-ca"
	alpnMQTT    = "mqtt"
)

// Default limits.
const (
	DefaultMaxPacketSize = 128 << 10
	DefaultMQTTTLSAddr   = ":8883"
)

// MQTT listener ids, as mochi and the logs know them.
const (
	listenerMQTT     = "mqtt"
	listenerMQTTTLS  = "mqtt-tls"
	listenerMQTTALPN = "mqtt-alpn"
	listenerWS       = "websocket"
)

// authenticates says which listeners can tell who their clients are.
type authenticates struct{ mqtt, api, data bool }

func (c *Config) authenticates() authenticates {
	a := authenticates{
		mqtt: c.Identity == auth.ModeMTLS || c.Identity == auth.ModePassword,
		api:  c.CredentialsFile != "",
	}
	a.data = a.api || (c.ClientCA != "" && c.TLSCert != "")
	return a
}

// resolveSecurity fills in the listener addresses and limits, and checks
// that the security settings fit together. A listener that cannot identify
// its clients binds to loopback by default, and may bind elsewhere only
// with AllowAnonymous.
func (c *Config) resolveSecurity() error {
	if c.Identity == "" {
		c.Identity = auth.ModeNone
	}
	if _, err := auth.ParseMode(string(c.Identity)); err != nil {
		return err
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.MaxTopicLength == 0 {
		c.MaxTopicLength = auth.DefaultMaxTopicLength
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.RequestRate == 0 {
		c.RequestRate = throttle.DefaultRate
	}
	if c.RequestBurst == 0 {
		c.RequestBurst = int(max(c.RequestRate, 1))
	}
	a := c.authenticates()
	tlsOn := c.TLSCert != "" || c.TLSKey != ""
	var problems []error
	pick := func(key string, addr *string, def string, authenticated bool, how string) {
		switch {
		case *addr == "" && def != Off && !authenticated && !c.AllowAnonymous:
			*addr = "127.0.0.1" + def
		case *addr == "":
			*addr = def
		case *addr == Off:
		case !authenticated && !c.AllowAnonymous && !loopback(*addr):
			problems = append(problems, fmt.Errorf("%s %q would serve the network with no way to tell who its clients are: "+
				"configure %s, bind it to 127.0.0.1, or set allow_anonymous", key, *addr, how))
		}
	}
	mqttDefault := DefaultMQTTAddr
	if c.Identity == auth.ModeMTLS {
		mqttDefault = Off // nobody can present a certificate without TLS
	}
	tlsDefault := Off
	if tlsOn {
		tlsDefault = DefaultMQTTTLSAddr
	}
	const mqttHow = "identity mtls or password"
	pick("mqtt_addr", &c.MQTTAddr, mqttDefault, a.mqtt, mqttHow)
	pick("mqtt_tls_addr", &c.MQTTTLSAddr, tlsDefault, a.mqtt, mqttHow)
	pick("mqtt_alpn_addr", &c.MQTTALPNAddr, Off, a.mqtt, mqttHow)
	pick("websocket_addr", &c.WebSocketAddr, Off, a.mqtt, mqttHow)
	pick("api_addr", &c.APIAddr, DefaultAPIAddr, a.api, "credentials_file")
	pick("jobs_addr", &c.JobsAddr, DefaultJobsAddr, a.data, "credentials_file, or client_ca with tls_cert")
	if c.APIAddr == Off || c.JobsAddr == Off {
		problems = append(problems, errors.New("api_addr and jobs_addr cannot be off"))
	}
	if !tlsOn && (c.MQTTTLSAddr != Off || c.MQTTALPNAddr != Off) {
		problems = append(problems, errors.New("mqtt_tls_addr and mqtt_alpn_addr need tls_cert and tls_key"))
	}
	if tlsOn && (c.TLSCert == "" || c.TLSKey == "") {
		problems = append(problems, errors.New("tls_cert and tls_key go together"))
	}
	if c.ClientCA != "" && !tlsOn {
		problems = append(problems, errors.New("client_ca needs tls_cert and tls_key"))
	}
	switch c.Identity {
	case auth.ModeMTLS:
		if c.ClientCA == "" {
			problems = append(problems, errors.New("identity mtls needs client_ca (and tls_cert, tls_key)"))
		}
	case auth.ModePassword:
		if c.PasswordFile == "" {
			problems = append(problems, errors.New("identity password needs password_file"))
		}
	}
	if c.PasswordFile != "" && c.Identity != auth.ModePassword {
		problems = append(problems, errors.New("password_file is only used with identity password"))
	}
	for _, r := range c.TopicRules {
		if err := auth.ValidateTopicRule(r); err != nil {
			problems = append(problems, err)
		}
	}
	switch {
	case c.Store != StoreBadger && c.Store != StorePostgres:
		problems = append(problems, fmt.Errorf("store %q: must be %s or %s", c.Store, StoreBadger, StorePostgres))
	case c.Store == StorePostgres && c.StoreURL == "":
		problems = append(problems, errors.New("store postgres needs store_url (postgres://user:password@host:5432/db)"))
	}
	if c.MaxPacketSize < 0 || c.MaxTopicLength < 0 {
		problems = append(problems, errors.New("max_packet_size and max_topic_length must be positive"))
	}
	return errors.Join(problems...)
}

// CheckConfig reports what is wrong with cfg's security settings, as New
// would, without opening anything.
func CheckConfig(cfg Config) error {
	cfg.applyDefaults()
	return cfg.resolveSecurity()
}

// loopback reports whether addr binds to a loopback interface only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadSecrets reads the TLS material and the password file.
func (b *Broker) loadSecrets() error {
	c := &b.cfg
	if c.TLSCert != "" {
		st, err := certs.Load(certs.Files{Cert: c.TLSCert, Key: c.TLSKey, ClientCA: c.ClientCA})
		if err != nil {
			return err
		}
		b.certs = st
	}
	if c.Identity == auth.ModePassword {
		p, err := auth.LoadPasswords(c.PasswordFile)
		if err != nil {
			return err
		}
		b.passwords = p
	}
	b.throttle = throttle.New(c.RequestRate, c.RequestBurst)
	return b.loadCredentials()
}

// Reload re-reads the TLS certificates, the client CA bundle, the password
// file and the credentials file, as on SIGHUP. New connections and
// requests use what it read; connections already up are kept. Each file is
// read before anything changes, so a bad file changes nothing.
func (b *Broker) Reload() error {
	var p *auth.Passwords
	if b.cfg.Identity == auth.ModePassword {
		var err error
		if p, err = auth.LoadPasswords(b.cfg.PasswordFile); err != nil {
			return err
		}
	}
	var creds *sigv4.Credentials
	if b.cfg.CredentialsFile != "" {
		var err error
		if creds, err = sigv4.LoadCredentials(b.cfg.CredentialsFile); err != nil {
			return err
		}
	}
	users, err := b.loadConsoleUsers()
	if err != nil {
		return err
	}
	if b.certs != nil {
		if err := b.certs.Reload(); err != nil {
			return err
		}
	}
	if users != nil {
		b.console.SetUsers(users)
	}
	if p != nil {
		b.Auth.SetPasswords(p)
	}
	if creds != nil {
		b.controlSig.SetCredentials(creds)
		b.dataSig.SetCredentials(creds)
	}
	b.log.Info("reloaded certificates and credentials", "tls", b.certs != nil, "passwords", p != nil, "access_keys", creds != nil)
	return nil
}

// addMQTTListeners binds the configured MQTT listeners.
func (b *Broker) addMQTTListeners() error {
	c := &b.cfg
	clientAuth := certs.OptionalClientCert
	if c.Identity == auth.ModeMTLS {
		clientAuth = certs.RequireClientCert
	}
	var tlsConf *tls.Config
	if b.certs != nil {
		tlsConf = b.certs.ServerConfig(clientAuth, alpnAWSMQTT, alpnMQTT)
	}
	b.mqttLns = map[string]listeners.Listener{}
	add := func(id, addr string, ln func() (listeners.Listener, error)) error {
		if addr == Off {
			return nil
		}
		l, err := ln()
		if err == nil {
			err = b.MQTT.AddListener(l)
		}
		if err != nil {
			return fmt.Errorf("listen for MQTT (%s) on %s: %w", id, addr, err)
		}
		b.mqttLns[id] = l
		return nil
	}
	tcp := func(id, addr string, conf *tls.Config) func() (listeners.Listener, error) {
		return func() (listeners.Listener, error) {
			return newTCPListener(b.MQTT, id, addr, conf, c.WriteTimeout)
		}
	}
	if err := add(listenerMQTT, c.MQTTAddr, tcp(listenerMQTT, c.MQTTAddr, nil)); err != nil {
		return err
	}
	if err := add(listenerMQTTTLS, c.MQTTTLSAddr, tcp(listenerMQTTTLS, c.MQTTTLSAddr, tlsConf)); err != nil {
		return err
	}
	if err := add(listenerMQTTALPN, c.MQTTALPNAddr, tcp(listenerMQTTALPN, c.MQTTALPNAddr, tlsConf)); err != nil {
		return err
	}
	return add(listenerWS, c.WebSocketAddr, func() (listeners.Listener, error) {
		return newWSListener(b.MQTT, listenerWS, c.WebSocketAddr, tlsConf, c.WriteTimeout)
	})
}

// httpTLS returns the TLS configuration of an HTTP API, nil without TLS.
func (b *Broker) httpTLS(clientAuth certs.ClientAuth) *tls.Config {
	if b.certs == nil {
		return nil
	}
	return b.certs.ServerConfig(clientAuth, "http/1.1")
}

// listenerAddr returns the bound address of an MQTT listener, "" when it
// is off.
func (b *Broker) listenerAddr(id string) string {
	if l, ok := b.mqttLns[id]; ok {
		return l.Address()
	}
	return ""
}

// securityNotice logs how the broker identifies clients, once at start.
func (b *Broker) securityNotice() {
	a := b.cfg.authenticates()
	if !a.mqtt && !a.api && !a.data && !b.cfg.AllowAnonymous {
		b.log.Warn("no identity and no credentials configured: listening on loopback only; " +
			"configure identity, credentials_file or client_ca to serve the network, or set allow_anonymous")
	} else if b.cfg.AllowAnonymous && (!a.mqtt || !a.api || !a.data) {
		b.log.Warn("allow_anonymous is set: some listeners accept clients nobody identifies",
			"mqtt_identified", a.mqtt, "api_signed", a.api, "jobs_api_identified", a.data)
	}
	if b.cfg.Identity == auth.ModePassword && b.cfg.MQTTAddr != Off && !loopback(b.MQTTAddr()) {
		b.log.Warn("identity password on the plain MQTT listener: passwords cross the network in clear text", "mqtt", b.MQTTAddr())
	}
}
