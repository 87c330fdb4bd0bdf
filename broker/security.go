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
	"github.com/jobsbroker/jobsbroker/broker/mqttlisten"
	"github.com/jobsbroker/jobsbroker/broker/sigv4"
	"github.com/jobsbroker/jobsbroker/broker/throttle"
)

// ALPN protocols the MQTT TLS listeners offer. AWS IoT's port 443 takes
// MQTT under x-amzn-mqtt-ca, and clients built on the AWS CRT (the AWS IoT
// Device Client among them) always ask for it.
const (
	alpnAWSMQTT = "x-amzn-mqtt-ca"
	alpnMQTT    = "mqtt"
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
		c.WriteTimeout = mqttlisten.DefaultWriteTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = mqttlisten.DefaultConnectTimeout
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
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
				"configure %s, bind it to 127.0.0.1, or set %s", c.name(key), *addr, how, c.name("allow_anonymous")))
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
	mqttHow := c.name("identity") + " mtls or password"
	pick("mqtt_addr", &c.MQTTAddr, mqttDefault, a.mqtt, mqttHow)
	pick("mqtt_tls_addr", &c.MQTTTLSAddr, tlsDefault, a.mqtt, mqttHow)
	pick("mqtt_alpn_addr", &c.MQTTALPNAddr, Off, a.mqtt, mqttHow)
	pick("websocket_addr", &c.WebSocketAddr, Off, a.mqtt, mqttHow)
	pick("api_addr", &c.APIAddr, DefaultAPIAddr, a.api, c.name("credentials_file"))
	pick("jobs_addr", &c.JobsAddr, DefaultJobsAddr, a.data, c.name("credentials_file")+", or "+c.name("client_ca")+" with "+c.name("tls_cert"))
	if c.APIAddr == Off || c.JobsAddr == Off {
		problems = append(problems, fmt.Errorf("%s and %s cannot be off", c.name("api_addr"), c.name("jobs_addr")))
	}
	if !tlsOn && (c.MQTTTLSAddr != Off || c.MQTTALPNAddr != Off) {
		problems = append(problems, fmt.Errorf("%s and %s need %s and %s", c.name("mqtt_tls_addr"), c.name("mqtt_alpn_addr"), c.name("tls_cert"), c.name("tls_key")))
	}
	if tlsOn && (c.TLSCert == "" || c.TLSKey == "") {
		problems = append(problems, fmt.Errorf("%s and %s go together", c.name("tls_cert"), c.name("tls_key")))
	}
	if c.ClientCA != "" && !tlsOn {
		problems = append(problems, fmt.Errorf("%s needs %s and %s", c.name("client_ca"), c.name("tls_cert"), c.name("tls_key")))
	}
	switch c.Identity {
	case auth.ModeMTLS:
		if c.ClientCA == "" {
			problems = append(problems, fmt.Errorf("%s mtls needs %s (and %s, %s)", c.name("identity"), c.name("client_ca"), c.name("tls_cert"), c.name("tls_key")))
		}
	case auth.ModePassword:
		if c.PasswordFile == "" {
			problems = append(problems, fmt.Errorf("%s password needs %s", c.name("identity"), c.name("password_file")))
		}
	}
	if c.PasswordFile != "" && c.Identity != auth.ModePassword {
		problems = append(problems, fmt.Errorf("%s is only used with %s password", c.name("password_file"), c.name("identity")))
	}
	for _, r := range c.TopicRules {
		if err := auth.ValidateTopicRule(r); err != nil {
			problems = append(problems, err)
		}
	}
	return errors.Join(problems...)
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
			return fmt.Errorf("listen for MQTT (%s) on %s (%s): %w", id, addr, c.name(strings.ReplaceAll(id, "-", "_")+"_addr"), err)
		}
		b.mqttLns[id] = l
		return nil
	}
	opts := mqttlisten.Options{WriteTimeout: c.WriteTimeout, ConnectTimeout: max(c.ConnectTimeout, 0),
		MaxConns: c.maxConnections(), Stats: b.security, Log: b.log.With("component", "mqtt")}
	tcp := func(id, addr string, conf *tls.Config) func() (listeners.Listener, error) {
		return func() (listeners.Listener, error) {
			return mqttlisten.NewTCP(b.MQTT, id, addr, conf, opts)
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
		return mqttlisten.NewWebSocket(b.MQTT, listenerWS, c.WebSocketAddr, tlsConf, opts)
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
		c := &b.cfg
		b.log.Warn(fmt.Sprintf("no identity and no credentials configured: listening on loopback only; "+
			"configure %s, %s or %s to serve the network, or set %s",
			c.name("identity"), c.name("credentials_file"), c.name("client_ca"), c.name("allow_anonymous")))
	} else if b.cfg.AllowAnonymous && (!a.mqtt || !a.api || !a.data) {
		b.log.Warn(b.cfg.name("allow_anonymous")+" is set: some listeners accept clients nobody identifies",
			"mqtt_identified", a.mqtt, "api_signed", a.api, "jobs_api_identified", a.data)
	}
	if b.cfg.Identity == auth.ModePassword && b.cfg.MQTTAddr != Off && !loopback(b.MQTTAddr()) {
		b.log.Warn("identity password on the plain MQTT listener: passwords cross the network in clear text", "mqtt", b.MQTTAddr())
	}
	if n := mqttlisten.DescriptorLimit(); n > 0 && n < lowDescriptorLimit && b.cfg.MaxConnections == 0 {
		b.log.Warn("the file-descriptor limit is low: each MQTT listener serves few connections; raise it (ulimit -n, LimitNOFILE)",
			"limit", n, "max_connections", b.cfg.maxConnections())
	}
}

// lowDescriptorLimit is the descriptor limit below which the broker warns
// at start.
const lowDescriptorLimit = 16384
