package deploy_test

// Security of the deployments: which listeners each command line opens and
// how they identify their clients, the Secrets the Kubernetes files come
// from, the commands deploy/README.md gives to create them, and the real
// broker binary started with the StatefulSet's and the compose stack's
// exact command lines.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// ---------------------------------------------------------------------------
// Command lines

// cmdline is how a deployment starts the broker: its arguments and the
// JOBSBROKER_* variables of its environment (which win over flags).
type cmdline struct {
	args []string
	env  map[string]string
}

func envName(flag string) string {
	return "JOBSBROKER_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// value returns the setting of a flag, and whether it is given.
func (cl cmdline) value(flag string) (string, bool) {
	if v := cl.env[envName(flag)]; v != "" {
		return v, true
	}
	return flagValue(cl.args, flag)
}

// on reports whether a boolean setting is on.
func (cl cmdline) on(flag string) bool {
	if v := cl.env[envName(flag)]; v != "" {
		b, _ := strconv.ParseBool(v)
		return b
	}
	return boolFlag(cl.args, flag)
}

// boolFlags are the broker's boolean flags, which take no separate value.
var boolFlags = []string{"allow-anonymous", "no-sync", "events"}

// without returns cl minus a flag (and its value).
func (cl cmdline) without(flag string) cmdline {
	out := cmdline{env: map[string]string{}}
	for k, v := range cl.env {
		if k != envName(flag) {
			out.env[k] = v
		}
	}
	for i := 0; i < len(cl.args); i++ {
		a := strings.TrimPrefix(strings.TrimPrefix(cl.args[i], "-"), "-")
		if a == flag {
			if !slices.Contains(boolFlags, flag) {
				i++ // its value
			}
			continue
		}
		if strings.HasPrefix(a, flag+"=") {
			continue
		}
		out.args = append(out.args, cl.args[i])
	}
	return out
}

func containerCmdline(c *corev1.Container) cmdline {
	cl := cmdline{args: c.Args, env: map[string]string{}}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			cl.env[e.Name] = e.Value
		}
	}
	return cl
}

// composeCmdline is the compose broker's: the image's entrypoint, then the
// service's command, with its environment.
func composeCmdline(t *testing.T, compose *composeFile) cmdline {
	t.Helper()
	return composeServiceCmdline(t, compose, "jobsbroker")
}

// composeServiceCmdline is how the compose service name runs the broker
// image.
func composeServiceCmdline(t *testing.T, compose *composeFile, name string) cmdline {
	t.Helper()
	ep, _ := dockerEntrypoint(t)
	svc, ok := compose.Services[name]
	if !ok {
		t.Fatalf("no compose service %s", name)
	}
	cl := cmdline{args: append(slices.Clone(ep[1:]), svc.Command...), env: map[string]string{}}
	for k, v := range svc.Environment {
		cl.env[k] = v
	}
	return cl
}

// listener is one of the broker's listeners (broker/security.go): its
// address flag and the key of its bound address in the "jobsbroker
// started" log line.
type listener struct {
	flag, logKey string
	// explicit: its default depends on other settings, so the
	// StatefulSet must spell it out for its Services to be checkable.
	explicit bool
}

var brokerListeners = []listener{
	{"mqtt-addr", "mqtt", true},
	{"mqtt-tls-addr", "mqtt_tls", true},
	{"mqtt-alpn-addr", "mqtt_alpn", false},
	{"websocket-addr", "websocket", false},
	{"api-addr", "api", true},
	{"jobs-addr", "jobs_api", true},
}

const off = "off"

// identified reports whether a listener can tell who its clients are
// (broker/security.go, authenticates).
func (cl cmdline) identified(flag string) bool {
	identity, _ := cl.value("identity")
	_, creds := cl.value("credentials-file")
	_, ca := cl.value("client-ca")
	_, cert := cl.value("tls-cert")
	switch flag {
	case "api-addr":
		return creds
	case "jobs-addr":
		return creds || (ca && cert)
	default:
		return identity == "mtls" || identity == "password"
	}
}

// listenerAddrs returns the address of every listener, "off" for those
// that are off: the one given, else the default documented by
// `jobsbroker -h` (which binds to 127.0.0.1 a listener that cannot
// identify its clients, unless -allow-anonymous).
func (cl cmdline) listenerAddrs() map[string]string {
	identity, _ := cl.value("identity")
	_, tlsOn := cl.value("tls-cert")
	defaults := map[string]string{
		"mqtt-addr": ":1883", "mqtt-tls-addr": off, "mqtt-alpn-addr": off, "websocket-addr": off,
		"api-addr": ":8080", "jobs-addr": ":8081",
	}
	if identity == "mtls" {
		defaults["mqtt-addr"] = off
	}
	if tlsOn {
		defaults["mqtt-tls-addr"] = ":8883"
	}
	out := map[string]string{}
	for _, l := range brokerListeners {
		addr, ok := cl.value(l.flag)
		if !ok || addr == "" {
			addr = defaults[l.flag]
			if addr != off && !cl.identified(l.flag) && !cl.on("allow-anonymous") {
				addr = "127.0.0.1" + addr
			}
		}
		out[l.flag] = addr
	}
	return out
}

// openPorts returns the ports the listeners bind, sorted.
func (cl cmdline) openPorts(t *testing.T) []int32 {
	t.Helper()
	var ports []int32
	for flag, addr := range cl.listenerAddrs() {
		if addr == off {
			continue
		}
		_, p, err := net.SplitHostPort(addr)
		port, perr := strconv.Atoi(p)
		if err != nil || perr != nil || port <= 0 {
			t.Errorf("-%s %q is no host:port with a fixed port", flag, addr)
			continue
		}
		ports = append(ports, int32(port))
	}
	slices.Sort(ports)
	return ports
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// fileFlags are the settings that name files the broker reads.
var fileFlags = []string{"tls-cert", "tls-key", "client-ca", "credentials-file", "password-file", "config"}

// ---------------------------------------------------------------------------
// Kubernetes: static checks

// secretFile returns the Secret and key the file at path in the container
// comes from, or why it does not come from one the way the broker needs.
func secretFile(pod *corev1.PodSpec, c *corev1.Container, path string) (secret, key string, err error) {
	path = filepath.Clean(path)
	for _, vm := range c.VolumeMounts {
		rel, rerr := filepath.Rel(filepath.Clean(vm.MountPath), path)
		if rerr != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue
		}
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == vm.Name {
				vol = &pod.Volumes[i]
			}
		}
		switch {
		case vol == nil || vol.Secret == nil:
			return "", "", fmt.Errorf("%s is under %s, which is not a Secret volume", path, vm.MountPath)
		case vm.SubPath != "" || vm.SubPathExpr != "":
			return "", "", fmt.Errorf("%s is mounted with subPath, which the kubelet never updates (no reload)", vm.MountPath)
		case !vm.ReadOnly:
			return "", "", fmt.Errorf("%s is not mounted readOnly", vm.MountPath)
		case vol.Secret.Optional != nil && *vol.Secret.Optional:
			return "", "", fmt.Errorf("Secret %s is optional: the broker would start without %s", vol.Secret.SecretName, path)
		case len(vol.Secret.Items) == 0:
			return "", "", fmt.Errorf("volume %s lists no items: a Secret that lacks a key would start the pod and fail the broker", vol.Name)
		}
		for _, it := range vol.Secret.Items {
			if filepath.Clean(it.Path) != rel {
				continue
			}
			mode := int32(0o644)
			if vol.Secret.DefaultMode != nil {
				mode = *vol.Secret.DefaultMode
			}
			if it.Mode != nil {
				mode = *it.Mode
			}
			psc := pod.SecurityContext
			switch {
			case mode&0o007 != 0:
				return "", "", fmt.Errorf("%s has mode %#o: readable by anyone in the container", path, mode)
			case mode&0o040 == 0 || psc == nil || psc.FSGroup == nil:
				// Secret files belong to root; the broker is not root.
				return "", "", fmt.Errorf("%s has mode %#o and fsGroup %v: the broker's user cannot read it", path, mode, psc)
			}
			return vol.Secret.SecretName, it.Key, nil
		}
		return "", "", fmt.Errorf("%s: Secret volume %s has no item with path %s", path, vol.Name, rel)
	}
	return "", "", fmt.Errorf("%s is under no volume mount", path)
}

// TestKubernetesSecurity checks that the StatefulSet identifies the
// clients of every listener it opens, with files from Secrets.
func TestKubernetesSecurity(t *testing.T) {
	m := loadManifests(t)
	sts := m.statefulSets[0]
	c := brokerContainer(t, sts)
	checkPodSecurity(t, &sts.Spec.Template.Spec, c)
	for _, e := range c.Env {
		if e.ValueFrom != nil && strings.HasPrefix(e.Name, "JOBSBROKER_") {
			t.Errorf("env %s comes from %v; give settings as args or plain values, which these tests read", e.Name, e.ValueFrom)
		}
	}

	// A prometheus.io-free setup: the ServiceMonitor says how to scrape.
	annotated := map[string]map[string]string{
		"StatefulSet " + sts.Name: sts.Annotations, "the pod template": sts.Spec.Template.Annotations,
	}
	for _, svc := range m.services {
		annotated["Service "+svc.Name] = svc.Annotations
	}
	for what, ann := range annotated {
		for k := range ann {
			if strings.HasPrefix(k, "prometheus.io/") {
				t.Errorf("%s has annotation %s; the ServiceMonitor is how Prometheus finds the broker", what, k)
			}
		}
	}
}

// checkPodSecurity checks that the broker's container identifies the
// clients of every listener it opens, with files from Secret volumes.
func checkPodSecurity(t *testing.T, pod *corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	cl := containerCmdline(c)
	if cl.on("allow-anonymous") {
		t.Errorf("the container's args set -allow-anonymous")
	}
	if v, _ := cl.value("identity"); v != "mtls" {
		t.Errorf("-identity = %q, want mtls (devices identified by their certificates)", v)
	}
	for _, f := range []string{"tls-cert", "tls-key", "client-ca", "credentials-file"} {
		if _, ok := cl.value(f); !ok {
			t.Errorf("no -%s in args %v", f, c.Args)
		}
	}

	// Every listener: spelled out where its default depends on other
	// settings, reachable from the Services, and identified.
	addrs := cl.listenerAddrs()
	for _, l := range brokerListeners {
		if _, ok := cl.value(l.flag); l.explicit && !ok {
			t.Errorf("no -%s in args: give every listener's address (or off) so that the Services can be checked against it", l.flag)
		}
		addr := addrs[l.flag]
		if addr == off {
			continue
		}
		if host, _, _ := net.SplitHostPort(addr); isLoopbackHost(host) {
			t.Errorf("-%s %s is loopback: no Service reaches it", l.flag, addr)
		}
		if !cl.identified(l.flag) {
			t.Errorf("-%s %s cannot identify its clients (%v)", l.flag, addr, c.Args)
		}
	}

	// Every file the broker reads is an item of a Secret volume.
	for _, f := range fileFlags {
		v, ok := cl.value(f)
		if !ok {
			continue
		}
		if _, _, err := secretFile(pod, c, v); err != nil {
			t.Errorf("-%s %s: %v", f, v, err)
		}
	}
}

// checkScrapeTLS checks a ServiceMonitor endpoint against the broker's TLS
// settings: HTTPS, with the CA of the broker's certificate and a server
// name the certificate can carry.
func checkScrapeTLS(t *testing.T, pod *corev1.PodSpec, c *corev1.Container, svc *corev1.Service, ep monitoringv1.Endpoint) {
	t.Helper()
	cl := containerCmdline(c)
	scheme := "http"
	if ep.Scheme != nil {
		scheme = strings.ToLower(string(*ep.Scheme))
	}
	certFile, tlsOn := cl.value("tls-cert")
	if !tlsOn {
		if scheme != "http" {
			t.Errorf("ServiceMonitor scheme = %q; without -tls-cert the API serves plain HTTP", scheme)
		}
		return
	}
	if scheme != "https" {
		t.Errorf("ServiceMonitor scheme = %q; with -tls-cert the API serves HTTPS only", scheme)
	}
	tc := ep.TLSConfig
	if tc == nil {
		t.Error("ServiceMonitor endpoint has no tlsConfig: Prometheus cannot check the broker's certificate")
		return
	}
	if tc.InsecureSkipVerify != nil && *tc.InsecureSkipVerify {
		t.Error("ServiceMonitor tlsConfig.insecureSkipVerify is true")
	}
	if tc.ServerName == nil {
		t.Errorf("ServiceMonitor tlsConfig has no serverName: Prometheus would check the certificate against the pod's IP")
	} else if *tc.ServerName != svc.Name && !strings.HasPrefix(*tc.ServerName, svc.Name+".") {
		t.Errorf("ServiceMonitor tlsConfig.serverName = %q, want the scraped Service's DNS name (%s or %s.<namespace>.svc)", *tc.ServerName, svc.Name, svc.Name)
	}
	certSecret, certKey, err := secretFile(pod, c, certFile)
	if err != nil {
		t.Errorf("-tls-cert: %v", err)
		return
	}
	keyFile, _ := cl.value("tls-key")
	_, keyKey, _ := secretFile(pod, c, keyFile)
	ca := tc.CA.Secret
	switch {
	case ca == nil:
		t.Errorf("ServiceMonitor tlsConfig.ca names no Secret key (%+v)", tc.CA)
	case ca.Name != certSecret:
		t.Errorf("ServiceMonitor tlsConfig.ca is from Secret %s; the broker's certificate is from %s", ca.Name, certSecret)
	case ca.Key == certKey || ca.Key == keyKey:
		t.Errorf("ServiceMonitor tlsConfig.ca is key %s, the broker's own certificate or key, not its CA", ca.Key)
	}
	if tc.Cert != (monitoringv1.SecretOrConfigMap{}) || tc.KeySecret != nil {
		t.Errorf("ServiceMonitor presents a client certificate; 8080 asks for none")
	}
}

// ---------------------------------------------------------------------------
// deploy/README.md

// readmeBlock returns the one fenced block of deploy/README.md in lang
// that contains marker.
func readmeBlock(t *testing.T, lang, marker string) string {
	t.Helper()
	var found []string
	var cur []string
	in, curLang := false, ""
	for _, line := range strings.Split(string(readFile(t, "README.md")), "\n") {
		if rest, ok := strings.CutPrefix(line, "```"); ok {
			if in {
				if curLang == lang && strings.Contains(strings.Join(cur, "\n"), marker) {
					found = append(found, strings.Join(cur, "\n")+"\n")
				}
				in, cur = false, nil
			} else {
				in, curLang = true, strings.TrimSpace(rest)
			}
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("deploy/README.md has %d ```%s blocks with %q, want 1", len(found), lang, marker)
	}
	return found[0]
}

// shellCommands joins a shell block's continuation lines and drops
// comments and blank lines.
func shellCommands(block string) []string {
	var cmds []string
	var cur strings.Builder
	for _, line := range strings.Split(block, "\n") {
		s := strings.TrimSpace(line)
		if cur.Len() == 0 && (s == "" || strings.HasPrefix(s, "#")) {
			continue
		}
		if c, ok := strings.CutSuffix(s, "\\"); ok {
			cur.WriteString(c + " ")
			continue
		}
		cur.WriteString(s)
		cmds = append(cmds, cur.String())
		cur.Reset()
	}
	return cmds
}

// readmeSecret is a `kubectl create secret` command of the README.
type readmeSecret struct {
	command, name, typ string
	files              map[string]string // key -> file
}

// readmeSecrets parses the README's `kubectl create secret` commands.
func readmeSecrets(t *testing.T) []readmeSecret {
	t.Helper()
	var out []readmeSecret
	for _, cmd := range shellCommands(readmeBlock(t, "sh", "create secret")) {
		f := strings.Fields(cmd)
		i := slices.Index(f, "secret")
		if !slices.Contains(f, "create") || i < 0 || i+2 >= len(f) {
			continue
		}
		s := readmeSecret{command: cmd, name: f[i+2], typ: string(corev1.SecretTypeOpaque), files: map[string]string{}}
		if f[i+1] == "tls" {
			t.Errorf("README: %q: kubectl create secret tls takes no ca.crt; use generic --type=kubernetes.io/tls", cmd)
		}
		for _, a := range f {
			if v, ok := strings.CutPrefix(a, "--type="); ok {
				s.typ = v
			}
			if v, ok := strings.CutPrefix(a, "--from-file="); ok {
				key, file, named := strings.Cut(v, "=")
				if !named {
					key, file = filepath.Base(v), v
				}
				s.files[key] = file
			}
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		t.Fatal("deploy/README.md creates no Secret with kubectl")
	}
	return out
}

// TestReadmeSecrets checks the README's Secrets against the StatefulSet
// and the ServiceMonitor, runs its kubectl commands with --dry-run=client
// (when kubectl is installed) and checks its cert-manager Certificate.
func TestReadmeSecrets(t *testing.T) {
	m := loadManifests(t)
	sts := m.statefulSets[0]
	pod := &sts.Spec.Template.Spec
	c := brokerContainer(t, sts)
	cl := containerCmdline(c)
	secrets := map[string]readmeSecret{}
	for _, s := range readmeSecrets(t) {
		secrets[s.name] = s
	}
	// Every key of every Secret the broker's files come from.
	certFile, _ := cl.value("tls-cert")
	tlsSecret, _, _ := secretFile(pod, c, certFile)
	for _, f := range fileFlags {
		v, ok := cl.value(f)
		if !ok {
			continue
		}
		name, key, err := secretFile(pod, c, v)
		if err != nil {
			continue // TestKubernetesSecurity reports it
		}
		s, ok := secrets[name]
		if !ok {
			t.Errorf("-%s comes from Secret %s, which deploy/README.md does not create", f, name)
			continue
		}
		if _, ok := s.files[key]; !ok {
			t.Errorf("-%s comes from key %s of Secret %s, which %q does not set", f, key, name, s.command)
		}
	}
	if s, want := secrets[tlsSecret], string(corev1.SecretTypeTLS); s.name != "" && s.typ != want {
		t.Errorf("Secret %s holds the broker's certificate: type %s, want %s (what cert-manager writes)", s.name, s.typ, want)
	}
	for _, ep := range m.serviceMonitors[0].Spec.Endpoints {
		if ep.TLSConfig == nil || ep.TLSConfig.CA.Secret == nil {
			continue
		}
		ca := ep.TLSConfig.CA.Secret
		if _, ok := secrets[ca.Name].files[ca.Key]; !ok {
			t.Errorf("the ServiceMonitor reads key %s of Secret %s, which deploy/README.md does not set", ca.Key, ca.Name)
		}
	}

	// The cert-manager Certificate writes the same Secret, for the names
	// the ServiceMonitor and the devices check.
	var cert struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			SecretName string   `json:"secretName"`
			DNSNames   []string `json:"dnsNames"`
			Usages     []string `json:"usages"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(readmeBlock(t, "yaml", "kind: Certificate")), &cert); err != nil {
		t.Fatalf("README cert-manager Certificate: %v", err)
	}
	if cert.APIVersion != "cert-manager.io/v1" || cert.Spec.SecretName != tlsSecret {
		t.Errorf("README Certificate: %s, secretName %q; want cert-manager.io/v1 writing %s", cert.APIVersion, cert.Spec.SecretName, tlsSecret)
	}
	for _, name := range certNames(t, m, c) {
		if !slices.Contains(cert.Spec.DNSNames, name) {
			t.Errorf("README Certificate dnsNames %v lack %s", cert.Spec.DNSNames, name)
		}
	}
	if !slices.Contains(cert.Spec.Usages, "server auth") {
		t.Errorf("README Certificate usages %v lack server auth", cert.Spec.Usages)
	}

	// The kubectl commands, offline.
	kubectl := needTool(t, "kubectl", "the README's kubectl commands were not run (the checks above passed)")
	dir := t.TempDir()
	var script strings.Builder
	for _, cmd := range shellCommands(readmeBlock(t, "sh", "create secret")) {
		if regexp.MustCompile(`^[A-Za-z_]+=\S*$`).MatchString(cmd) {
			script.WriteString(cmd + "\n") // NS=...
		}
	}
	for _, s := range secrets {
		for _, file := range s.files {
			if err := os.WriteFile(filepath.Join(dir, file), []byte("placeholder "+file), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// Only the create-secret commands, client-side: nothing reaches a cluster.
		script.WriteString(s.command + " --dry-run=client -o yaml && echo ---\n")
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dir, "no-kubeconfig"), "PATH="+filepath.Dir(kubectl)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README kubectl commands: %v\n%s\n%s", err, script.String(), out)
	}
	made := 0
	for i, doc := range splitDocuments(out) {
		var sec corev1.Secret
		strictDecode(t, fmt.Sprintf("kubectl output %d", i+1), doc, &sec)
		s := secrets[sec.Name]
		if sec.Type == "" {
			sec.Type = corev1.SecretTypeOpaque // the API server's default
		}
		if string(sec.Type) != s.typ {
			t.Errorf("kubectl made Secret %s of type %s, want %s", sec.Name, sec.Type, s.typ)
		}
		for key, file := range s.files {
			if string(sec.Data[key]) != "placeholder "+file {
				t.Errorf("kubectl made Secret %s with key %s = %q, want the content of %s", sec.Name, key, sec.Data[key], file)
			}
		}
		made++
	}
	if made != len(secrets) {
		t.Errorf("kubectl made %d Secrets, want %d:\n%s", made, len(secrets), out)
	}
}

// certNames returns the names the broker's certificate must carry: the
// ServiceMonitor's serverName and the endpoint host devices connect to.
func certNames(t *testing.T, m *manifests, c *corev1.Container) []string {
	t.Helper()
	var names []string
	for _, ep := range m.serviceMonitors[0].Spec.Endpoints {
		if ep.TLSConfig != nil && ep.TLSConfig.ServerName != nil {
			names = append(names, *ep.TLSConfig.ServerName)
		}
	}
	if host, ok := containerCmdline(c).value("endpoint-host"); ok {
		names = append(names, host)
	} else {
		t.Error("no JOBSBROKER_ENDPOINT_HOST / -endpoint-host: DescribeEndpoint would answer localhost")
	}
	return names
}

// material is what the Secrets hold, as files: from the README's openssl
// commands, or (without openssl) from brokertest's test CA.
type material struct {
	files      map[string]string // Secret key -> file
	device     tls.Certificate
	thing      string
	fromREADME bool
}

// serverName is the name a client checks the broker's certificate
// against: name itself when the README's commands made it, else the test
// CA's localhost.
func (m *material) serverName(name string) string {
	if m.fromREADME {
		return name
	}
	return "localhost"
}

func secretMaterial(t *testing.T) *material {
	t.Helper()
	keys := map[string]string{} // Secret key -> file name the README gives it
	for _, s := range readmeSecrets(t) {
		for k, f := range s.files {
			if other, dup := keys[k]; dup && other != f {
				t.Fatalf("README: key %s is %s in one Secret and %s in another", k, other, f)
			}
			keys[k] = f
		}
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is not installed: the README's certificate commands cannot run")
		}
		t.Log("openssl is not installed: using brokertest's CA instead of the README's openssl commands")
		return pkiMaterial(t, keys)
	}
	dir := t.TempDir()
	block := readmeBlock(t, "sh", "openssl req")
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's openssl commands: %v\n%s", err, out)
	}
	m := &material{files: map[string]string{}, fromREADME: true}
	used := map[string]bool{}
	for k, f := range keys {
		m.files[k] = filepath.Join(dir, f)
		used[f] = true
		if _, err := os.Stat(m.files[k]); err != nil {
			t.Fatalf("the README's openssl commands make no %s for key %s: %v", f, k, err)
		}
	}
	// The device: the one certificate no Secret holds.
	crts, _ := filepath.Glob(filepath.Join(dir, "*.crt"))
	for _, crt := range crts {
		if used[filepath.Base(crt)] {
			continue
		}
		pair, err := tls.LoadX509KeyPair(crt, strings.TrimSuffix(crt, ".crt")+".key")
		if err != nil {
			t.Fatalf("README device certificate %s: %v", crt, err)
		}
		if m.thing != "" {
			t.Fatalf("README: more than one device certificate (%s, %s)", m.thing, crt)
		}
		m.device, m.thing = pair, pair.Leaf.Subject.CommonName
	}
	if m.thing == "" {
		t.Fatal("the README's openssl commands make no device certificate")
	}
	return m
}

func pkiMaterial(t *testing.T, keys map[string]string) *material {
	p := brokertest.NewPKI(t)
	srv := p.Server("tls")
	const thing = "deploy-check"
	dev := p.Device(thing)
	creds := filepath.Join(p.Dir, "credentials")
	ini := "[operator]\naws_access_key_id = AKIADEPLOYCHECK00001\naws_secret_access_key = deploy-check-secret\n"
	if err := os.WriteFile(creds, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	byName := map[string]string{"tls.crt": srv.Cert, "tls.key": srv.Key, "ca.crt": p.CAFile, "credentials": creds}
	m := &material{files: map[string]string{}, device: dev.Pair, thing: thing}
	for k := range keys {
		f, ok := byName[k]
		if !ok {
			t.Fatalf("no test material for Secret key %s", k)
		}
		m.files[k] = f
	}
	return m
}

// accessKey returns the first access key of an AWS shared-credentials file.
func accessKey(t *testing.T, path string) (id, secret string) {
	t.Helper()
	for _, line := range strings.Split(string(readFile(t, path)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok:
		case k == "aws_access_key_id" && id == "":
			id = v
		case k == "aws_secret_access_key" && secret == "":
			secret = v
		}
	}
	if id == "" || secret == "" {
		t.Fatalf("%s holds no access key", path)
	}
	return id, secret
}

// ---------------------------------------------------------------------------
// Running the binary

// rewrite returns the command line to run here: paths under a mount point
// moved to the directory standing in for it, and each listener's port
// made 0 (its host kept: a wildcard stays a wildcard, so that the broker's
// own check of who may serve the network applies).
func (cl cmdline) rewrite(mounts map[string]string) ([]string, map[string]string) {
	move := func(v string) string { return movePath(mounts, v) }
	var args []string
	for _, a := range cl.args {
		if name, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(name, "-") {
			args = append(args, name+"="+move(v))
			continue
		}
		args = append(args, move(a))
	}
	env := map[string]string{}
	for k, v := range cl.env {
		env[k] = move(v)
	}
	addrs := cl.listenerAddrs()
	for _, l := range brokerListeners {
		v := off
		if addrs[l.flag] != off {
			host, _, _ := net.SplitHostPort(addrs[l.flag])
			v = net.JoinHostPort(host, "0")
		}
		args = append(args, "-"+l.flag, v)
		if _, ok := env[envName(l.flag)]; ok {
			env[envName(l.flag)] = v
		}
	}
	return args, env
}

// movePath moves a path under a mount point (the longest that holds it)
// to the directory standing in for it.
func movePath(mounts map[string]string, v string) string {
	best := ""
	for mp := range mounts {
		if (v == mp || strings.HasPrefix(v, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best == "" {
		return v
	}
	return mounts[best] + strings.TrimPrefix(v, best)
}

// deployed is a broker started with a deployment's command line.
type deployed struct {
	p     *brokertest.Process
	addrs map[string]string // listener flag -> 127.0.0.1:port
}

// startDeployed runs the binary with cl (rewritten) and checks that the
// listeners cl opens, and only those, serve.
func startDeployed(t *testing.T, cl cmdline, mounts map[string]string) *deployed {
	t.Helper()
	args, env := cl.rewrite(mounts)
	for k, v := range env {
		t.Setenv(k, v)
	}
	dataDir, ok := flagValue(args, "data-dir")
	if !ok {
		dataDir = t.TempDir()
	}
	p := brokertest.StartProcess(t, dataDir, args...)
	var started map[string]any
	for _, line := range strings.Split(p.Logs(), "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil && v["msg"] == "jobsbroker started" {
			started = v
		}
	}
	if started == nil {
		t.Fatalf("no \"jobsbroker started\" line:\n%s", p.Logs())
	}
	d := &deployed{p: p, addrs: map[string]string{}}
	for _, l := range brokerListeners {
		want := cl.listenerAddrs()[l.flag]
		got, _ := started[l.logKey].(string)
		if want == off {
			if got != "" {
				t.Errorf("-%s is off in the command line, yet the broker serves it on %s", l.flag, got)
			}
			continue
		}
		host, port, err := net.SplitHostPort(got)
		if err != nil {
			t.Errorf("-%s %s: the broker does not serve it (started line %v)", l.flag, want, started)
			continue
		}
		wantHost, _, _ := net.SplitHostPort(want)
		if ip := net.ParseIP(host); wantHost == "" && (ip == nil || !ip.IsUnspecified()) {
			t.Errorf("-%s %s: the broker listens on %s, not on every interface", l.flag, want, got)
		}
		d.addrs[l.flag] = net.JoinHostPort("127.0.0.1", port)
	}
	if t.Failed() {
		t.FailNow()
	}
	return d
}

// refuses runs the binary with cl (rewritten: its listeners where cl
// puts them) minus the flag drop, and checks that it refuses to start,
// saying each of want.
func refuses(t *testing.T, cl cmdline, drop string, mounts map[string]string, want ...string) {
	t.Helper()
	args, env := cl.rewrite(mounts)
	rest := cmdline{args: args, env: env}.without(drop)
	// A store of its own: the broker refuses before it opens one, but
	// should it not, it must not fail on another broker's lock instead.
	args, env = append(rest.args, "-data-dir", t.TempDir()), rest.env
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, brokertest.Binary(t), args...)
	cmd.Env = append(os.Environ(), "JOBSBROKER_MQTT_ADDR=", "JOBSBROKER_API_ADDR=", "JOBSBROKER_JOBS_ADDR=")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		logs.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "jobsbroker started") {
			cancel() // kills it
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &exit) {
		t.Errorf("jobsbroker %s started (or did not exit: %v), want a refusal:\n%s", strings.Join(args, " "), err, logs.String())
		return
	}
	for _, w := range want {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("jobsbroker %s refused to start without saying %q:\n%s", strings.Join(args, " "), w, logs.String())
		}
	}
}

// get does a GET and returns the status and body.
func get(t *testing.T, client *http.Client, url string, header http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0, nil, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// TestKubernetesStatefulSetRuns starts the binary with the StatefulSet's
// exact args and environment, its Secret volumes filled from the README's
// openssl commands, and talks to it as the kubelet, Prometheus, operators
// and devices would.
func TestKubernetesStatefulSetRuns(t *testing.T) {
	m := loadManifests(t)
	sts := m.statefulSets[0]
	pod := &sts.Spec.Template.Spec
	c := brokerContainer(t, sts)
	cl := containerCmdline(c)
	mat := secretMaterial(t)

	claims := map[string]bool{}
	for _, pvc := range sts.Spec.VolumeClaimTemplates {
		claims[pvc.Name] = true
	}
	mounts := podVolumes(t, pod, c, mat, claims)
	d := startDeployed(t, cl, mounts)

	// HTTPS as Prometheus scrapes it: the ServiceMonitor's CA and server
	// name. The kubelet's probes do not check the certificate.
	ep := m.serviceMonitors[0].Spec.Endpoints[0]
	if ep.TLSConfig == nil || ep.TLSConfig.CA.Secret == nil || ep.TLSConfig.ServerName == nil {
		t.Fatal("the ServiceMonitor has no tlsConfig with ca and serverName (TestKubernetesServiceMonitor)")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, mat.files[ep.TLSConfig.CA.Secret.Key])) {
		t.Fatalf("Secret key %s holds no PEM certificate", ep.TLSConfig.CA.Secret.Key)
	}
	httpsClient := func(serverName string, cert *tls.Certificate) *http.Client {
		conf := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
		if cert != nil {
			conf.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
	}
	prom := httpsClient(mat.serverName(*ep.TLSConfig.ServerName), nil)
	api := "https://" + d.addrs["api-addr"]
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _, body := get(t, prom, api+path, nil); code != http.StatusOK {
			t.Errorf("GET %s over HTTPS, unsigned: %d %s", path, code, body)
		} else if path == "/metrics" && !strings.Contains(body, "jobsbroker_ready 1") {
			t.Errorf("/metrics lacks jobsbroker_ready 1")
		}
	}
	plain := &http.Client{Timeout: 10 * time.Second}
	if code, _, _ := get(t, plain, "http://"+d.addrs["api-addr"]+"/readyz", nil); code == http.StatusOK {
		t.Error("the API answers plain HTTP")
	}

	// Operators: unsigned calls are refused, calls signed with a key of
	// the credentials file are served.
	code, hdr, body := get(t, prom, api+"/jobs", nil)
	if code != http.StatusForbidden || hdr.Get("x-amzn-ErrorType") != "MissingAuthenticationTokenException" {
		t.Errorf("unsigned ListJobs: %d %s %s, want 403 MissingAuthenticationTokenException", code, hdr.Get("x-amzn-ErrorType"), body)
	}
	credsFile, _ := cl.value("credentials-file")
	id, secret := accessKey(t, movePath(mounts, credsFile))
	region, ok := cl.value("region")
	if !ok {
		region = "us-east-1"
	}
	operator := iot.New(iot.Options{
		Region: region, BaseEndpoint: aws.String(api), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
		HTTPClient:  prom,
	})
	if _, err := operator.ListJobs(context.Background(), &iot.ListJobsInput{}); err != nil {
		t.Errorf("ListJobs signed with the credentials file's key %s: %v", id, err)
	}

	// Devices, by the endpoint host: MQTT over TLS with their certificate
	// (and not without one), and the iot-jobs-data API over HTTPS.
	host, _ := cl.value("endpoint-host")
	deviceTLS := func(cert *tls.Certificate) *tls.Config {
		conf := &tls.Config{RootCAs: pool, ServerName: mat.serverName(host), MinVersion: tls.VersionTLS12}
		if cert != nil {
			conf.Certificates = []tls.Certificate{*cert}
		}
		return conf
	}
	mqttURL := "ssl://" + d.addrs["mqtt-tls-addr"]
	dev, err := brokertest.TryConnect(t, brokertest.Dial{URL: mqttURL, ID: mat.thing, TLS: deviceTLS(&mat.device)})
	if err != nil {
		t.Errorf("device %s over MQTT/TLS with its certificate: %v", mat.thing, err)
	} else if err := dev.TrySubscribe("$aws/things/"+mat.thing+"/jobs/notify-next", 1); err != nil {
		t.Errorf("device %s subscribes to its notify-next: %v", mat.thing, err)
	}
	if _, err := brokertest.TryConnect(t, brokertest.Dial{URL: mqttURL, ID: mat.thing + "-nocert", TLS: deviceTLS(nil)}); err == nil {
		t.Error("a client without a certificate connected over MQTT/TLS")
	}
	jobs := "https://" + d.addrs["jobs-addr"] + "/things/" + mat.thing + "/jobs"
	devHTTP := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: deviceTLS(&mat.device)}}
	if code, _, body := get(t, devHTTP, jobs, nil); code != http.StatusOK {
		t.Errorf("GetPendingJobExecutions with the device certificate: %d %s", code, body)
	}
	anon := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: deviceTLS(nil)}}
	if code, _, body := get(t, anon, jobs, nil); code == http.StatusOK {
		t.Errorf("GetPendingJobExecutions with neither certificate nor signature: %d %s", code, body)
	}

	// The security flags are what lets it serve the network: without
	// each, the broker refuses to start.
	refuses(t, cl, "identity", mounts, "-mqtt-tls-addr", "would serve the network")
	refuses(t, cl, "credentials-file", mounts, "-api-addr", "would serve the network")
}

// podVolumes makes a directory for each of the container's volume mounts
// and returns them by mount path: the claims stay empty, the Secret
// volumes hold their items, from the Secrets' material.
func podVolumes(t *testing.T, pod *corev1.PodSpec, c *corev1.Container, mat *material, claims map[string]bool) map[string]string {
	t.Helper()
	root := t.TempDir()
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		dir := filepath.Join(root, vm.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		mounts[vm.MountPath] = dir
		if claims[vm.Name] {
			continue
		}
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == vm.Name {
				vol = &pod.Volumes[i]
			}
		}
		if vol == nil || vol.Secret == nil {
			t.Fatalf("volume %s is neither a claim nor a Secret; this test does not know what it holds", vm.Name)
		}
		for _, it := range vol.Secret.Items {
			src, ok := mat.files[it.Key]
			if !ok {
				t.Fatalf("Secret %s key %s: deploy/README.md does not create it", vol.Secret.SecretName, it.Key)
			}
			dst := filepath.Join(dir, it.Path)
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				t.Fatal(err)
			}
			mode := os.FileMode(0o644)
			if vol.Secret.DefaultMode != nil {
				mode = os.FileMode(*vol.Secret.DefaultMode)
			}
			if it.Mode != nil {
				mode = os.FileMode(*it.Mode)
			}
			if err := os.WriteFile(dst, readFile(t, src), mode|0o400); err != nil { // |0o400: the owner here is the test
				t.Fatal(err)
			}
		}
	}
	return mounts
}

// TestReadmeCertificates checks the README's certificates against the
// names the Kubernetes files use: the ServiceMonitor's serverName and the
// endpoint host devices connect to.
func TestReadmeCertificates(t *testing.T) {
	m := loadManifests(t)
	c := brokerContainer(t, m.statefulSets[0])
	mat := secretMaterial(t)
	if !mat.fromREADME {
		t.Skip("openssl not installed")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(readFile(t, mat.files["ca.crt"]))
	block, _ := pem.Decode(readFile(t, mat.files["tls.crt"]))
	if block == nil {
		t.Fatal("tls.crt holds no PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range certNames(t, m, c) {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the README's tls.crt for %s: %v", name, err)
		}
	}
	if _, err := mat.device.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the README's device certificate: %v", err)
	}
}

// TestComposeRuns starts the binary with the compose stack's command line
// (the image's entrypoint and the service's command) on every interface,
// as in the container, and talks to it as Prometheus and a device would.
func TestComposeRuns(t *testing.T) {
	compose := loadCompose(t)
	cl := composeCmdline(t, compose)
	mounts := map[string]string{}
	for _, v := range compose.Services["jobsbroker"].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || strings.HasPrefix(parts[0], ".") || strings.HasPrefix(parts[0], "/") {
			t.Fatalf("jobsbroker volume %q: this test knows named volumes only", v)
		}
		mounts[parts[1]] = t.TempDir()
	}
	d := startDeployed(t, cl, mounts)
	plain := &http.Client{Timeout: 10 * time.Second}
	for _, path := range []string{"/readyz", "/metrics"} {
		if code, _, body := get(t, plain, "http://"+d.addrs["api-addr"]+path, nil); code != http.StatusOK {
			t.Errorf("GET http://jobsbroker:%d%s: %d %s", apiPort, path, code, body)
		}
	}
	dev := brokertest.Connect3(t, d.addrs["mqtt-addr"], "compose-check")
	dev.Subscribe("$aws/things/compose-check/jobs/notify-next", 1)

	// -allow-anonymous is what lets it serve the container's network.
	refuses(t, cl, "allow-anonymous", mounts, "would serve the network")
}

// TestDockerImageNeedsSecurity checks that the bare image serves nobody
// beyond the container: its listeners default to loopback, and told to
// listen on every interface, it refuses to start.
func TestDockerImageNeedsSecurity(t *testing.T) {
	ep, volumes := dockerEntrypoint(t)
	cl := cmdline{args: slices.Clone(ep[1:]), env: map[string]string{}}
	for flag, addr := range cl.listenerAddrs() {
		if host, _, _ := net.SplitHostPort(addr); addr != off && !isLoopbackHost(host) {
			t.Errorf("the bare image serves -%s on %s to anyone", flag, addr)
		}
	}
	mounts := map[string]string{}
	for _, v := range volumes {
		mounts[v] = t.TempDir()
	}
	for flag, addr := range cl.listenerAddrs() {
		if addr != off {
			cl.args = append(cl.args, "-"+flag, ":0")
		}
	}
	refuses(t, cl, "", mounts, "would serve the network")
}
