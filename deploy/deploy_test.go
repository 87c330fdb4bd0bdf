package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// The ports and paths the broker serves (README, broker/broker.go).
const (
	mqttPort    = 1883 // plain MQTT: the compose stack
	mqttTLSPort = 8883 // MQTT over TLS: the Kubernetes devices
	apiPort     = 8080
	jobsAPIPort = 8081
	// defaultShutdownTimeout is cmd/jobsbroker's -shutdown-timeout default.
	defaultShutdownTimeout = 15 * time.Second
)

// ---------------------------------------------------------------------------
// Decoding helpers

// strictDecode converts one YAML document to JSON (rejecting duplicate keys)
// and decodes it into v, rejecting any field v does not have.
func strictDecode(t *testing.T, name string, doc []byte, v any) {
	t.Helper()
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		t.Fatalf("%s: not valid YAML: %v", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: does not decode strictly into %T: %v", name, v, err)
	}
	if dec.More() {
		t.Fatalf("%s: trailing data after the document", name)
	}
}

// splitDocuments splits a multi-document YAML file on its "---" lines and
// drops documents that hold only comments.
func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		meaningful := false
		for _, line := range strings.Split(cur.String(), "\n") {
			if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
				meaningful = true
				break
			}
		}
		if meaningful {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimRight(line, " \t") == "---" {
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return docs
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

// ---------------------------------------------------------------------------
// Kubernetes

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// manifests is everything a kustomization folder holds, decoded into the
// typed objects of k8s.io/api and the Prometheus Operator.
type manifests struct {
	kust                 kustomization
	statefulSets         []*appsv1.StatefulSet
	deployments          []*appsv1.Deployment
	podDisruptionBudgets []*policyv1.PodDisruptionBudget
	services             []*corev1.Service
	serviceMonitors      []*monitoringv1.ServiceMonitor
	networkPolicies      []*networkingv1.NetworkPolicy
}

// loadManifests decodes deploy/kubernetes, the single-node StatefulSet.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := decodeManifests(t, "kubernetes")
	if len(m.statefulSets) != 1 {
		t.Fatalf("want exactly one StatefulSet, have %d", len(m.statefulSets))
	}
	if len(m.serviceMonitors) != 1 {
		t.Fatalf("want exactly one ServiceMonitor, have %d", len(m.serviceMonitors))
	}
	return m
}

// decodeManifests decodes the kustomization in dir and every file it
// lists, which must be every manifest in dir.
func decodeManifests(t *testing.T, dir string) *manifests {
	t.Helper()
	m := &manifests{}
	kustFile := filepath.Join(dir, "kustomization.yaml")
	strictDecode(t, kustFile, readFile(t, kustFile), &m.kust)
	if m.kust.APIVersion != "kustomize.config.k8s.io/v1beta1" || m.kust.Kind != "Kustomization" {
		t.Fatalf("%s: apiVersion/kind = %s/%s", kustFile, m.kust.APIVersion, m.kust.Kind)
	}

	// Every manifest in the folder is listed, and every listed one exists.
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			onDisk = append(onDisk, base)
		}
	}
	listed := slices.Clone(m.kust.Resources)
	sort.Strings(onDisk)
	sort.Strings(listed)
	if !slices.Equal(onDisk, listed) {
		t.Fatalf("%s lists %v; the folder holds %v", kustFile, listed, onDisk)
	}

	for _, res := range m.kust.Resources {
		for i, doc := range splitDocuments(readFile(t, filepath.Join(dir, res))) {
			name := fmt.Sprintf("%s (document %d)", filepath.Join(dir, res), i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 StatefulSet":
				var o appsv1.StatefulSet
				strictDecode(t, name, doc, &o)
				m.statefulSets = append(m.statefulSets, &o)
			case "apps/v1 Deployment":
				var o appsv1.Deployment
				strictDecode(t, name, doc, &o)
				m.deployments = append(m.deployments, &o)
			case "policy/v1 PodDisruptionBudget":
				var o policyv1.PodDisruptionBudget
				strictDecode(t, name, doc, &o)
				m.podDisruptionBudgets = append(m.podDisruptionBudgets, &o)
			case "v1 Service":
				var o corev1.Service
				strictDecode(t, name, doc, &o)
				m.services = append(m.services, &o)
			case "networking.k8s.io/v1 NetworkPolicy":
				var o networkingv1.NetworkPolicy
				strictDecode(t, name, doc, &o)
				m.networkPolicies = append(m.networkPolicies, &o)
			case "monitoring.coreos.com/v1 ServiceMonitor":
				var o monitoringv1.ServiceMonitor
				strictDecode(t, name, doc, &o)
				m.serviceMonitors = append(m.serviceMonitors, &o)
			default:
				t.Fatalf("%s: unexpected object %s %s", name, tm.APIVersion, tm.Kind)
			}
		}
	}
	return m
}

// brokerContainer returns the StatefulSet's jobsbroker container.
func brokerContainer(t *testing.T, sts *appsv1.StatefulSet) *corev1.Container {
	t.Helper()
	cs := sts.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("StatefulSet %s: want one container, have %d", sts.Name, len(cs))
	}
	return &cs[0]
}

// flagValue returns the value of -name (or --name, =value or separate) in
// args, and whether it was given; the last one wins, as in package flag.
func flagValue(args []string, name string) (string, bool) {
	value, found := "", false
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name && i+1 < len(args) {
			value, found = args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			value, found = v, true
		}
	}
	return value, found
}

// boolFlag reports whether the boolean flag -name is on in args (-name,
// --name or -name=true; the last one wins).
func boolFlag(args []string, name string) bool {
	on := false
	for _, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name {
			on = true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			on, _ = strconv.ParseBool(v)
		}
	}
	return on
}

// setting is what the broker does with one of its flags: the
// JOBSBROKER_* variable wins over the flag, as in cmd/jobsbroker.
func setting(c *corev1.Container, flag string) (string, bool) {
	return containerCmdline(c).value(flag)
}

// containerPort resolves a port reference (number or name) against the
// container's ports.
func containerPort(t *testing.T, c *corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

func TestKubernetesStatefulSet(t *testing.T) {
	m := loadManifests(t)
	sts := m.statefulSets[0]
	spec := sts.Spec
	c := brokerContainer(t, sts)

	if spec.Replicas == nil || *spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1 (one broker owns its store)", spec.Replicas)
	}
	checkBrokerPod(t, m, spec.Selector, &spec.Template, c)

	// The data directory the broker is told to use is the claim's mount.
	dataDir, ok := setting(c, "data-dir")
	if !ok {
		t.Fatalf("no -data-dir in args %v (the default ./data is inside the read-only image)", c.Args)
	}
	claims := map[string]bool{}
	for _, pvc := range spec.VolumeClaimTemplates {
		claims[pvc.Name] = true
		if _, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
			t.Errorf("volume claim %s requests no storage", pvc.Name)
		}
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		if filepath.Clean(vm.MountPath) == filepath.Clean(dataDir) {
			if !claims[vm.Name] {
				t.Errorf("%s is mounted from %q, which is no volume claim template", dataDir, vm.Name)
			}
			if vm.ReadOnly {
				t.Errorf("%s is mounted read-only", dataDir)
			}
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("-data-dir %s is not where a volume claim is mounted (%v)", dataDir, c.VolumeMounts)
	}
}

// checkBrokerPod checks what every broker workload (the StatefulSet, the
// cluster's Deployment) needs: a selector that matches its pods, the image
// its kustomization.yaml renames, the ports its args open, probes on them,
// a grace period longer than the broker's shutdown, a locked-down
// container, and resource requests.
func checkBrokerPod(t *testing.T, m *manifests, selector *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec, c *corev1.Container) {
	t.Helper()
	pod := &tmpl.Spec
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil || sel.Empty() {
		t.Fatalf("selector %v: %v (empty: %v)", selector, err, sel == nil || sel.Empty())
	}
	if !sel.Matches(labels.Set(tmpl.Labels)) {
		t.Errorf("selector %s does not match the pod labels %v", sel, tmpl.Labels)
	}

	// Image: the one kustomization.yaml renames.
	imageNames := map[string]bool{}
	for _, img := range m.kust.Images {
		imageNames[img.Name] = true
	}
	if !imageNames[c.Image] {
		t.Errorf("container image %q is not among kustomization.yaml's images %v", c.Image, m.kust.Images)
	}

	// Ports: exactly those the args open (security_test.go reads the
	// listeners from the args), so no Service can point at a closed one.
	cl := containerCmdline(c)
	opened := cl.openPorts(t)
	var declared []int32
	for _, p := range c.Ports {
		declared = append(declared, p.ContainerPort)
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			t.Errorf("container port %s is %s, the broker serves TCP", p.Name, p.Protocol)
		}
	}
	slices.Sort(declared)
	if !slices.Equal(declared, opened) {
		t.Errorf("container declares ports %v; its args open %v", declared, opened)
	}
	for _, p := range []int32{mqttTLSPort, apiPort, jobsAPIPort} {
		if !slices.Contains(opened, p) {
			t.Errorf("the args do not open %d", p)
		}
	}
	if slices.Contains(opened, mqttPort) {
		t.Errorf("the args open plain MQTT (%d); under -identity mtls it must be off", mqttPort)
	}

	// Probes: liveness /healthz, readiness /readyz, both on the API port,
	// over HTTPS when the broker has a certificate (it then serves nothing
	// else on 8080).
	_, httpsOn := cl.value("tls-cert")
	probe := func(kind string, p *corev1.Probe, path string, required bool) {
		t.Helper()
		if p == nil {
			if required {
				t.Errorf("no %s probe", kind)
			}
			return
		}
		if p.HTTPGet == nil {
			t.Errorf("%s probe is not an HTTP GET", kind)
			return
		}
		if p.HTTPGet.Path != path {
			t.Errorf("%s probe path = %q, want %q", kind, p.HTTPGet.Path, path)
		}
		if port := containerPort(t, c, p.HTTPGet.Port); port != apiPort {
			t.Errorf("%s probe port = %d, want %d", kind, port, apiPort)
		}
		if want := corev1.URISchemeHTTPS; httpsOn && p.HTTPGet.Scheme != want {
			t.Errorf("%s probe scheme = %q, want %s: with -tls-cert the API serves HTTPS only", kind, p.HTTPGet.Scheme, want)
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz", true)
	probe("readiness", c.ReadinessProbe, "/readyz", true)
	probe("startup", c.StartupProbe, "/healthz", false)

	// Shutdown: the grace period outlasts the broker's shutdown delay
	// (unready while load balancers notice) and timeout together.
	shutdown := defaultShutdownTimeout
	if v, ok := setting(c, "shutdown-timeout"); ok {
		if shutdown, err = time.ParseDuration(v); err != nil {
			t.Fatalf("-shutdown-timeout %q: %v", v, err)
		}
	}
	if v, ok := setting(c, "shutdown-delay"); ok {
		delay, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("-shutdown-delay %q: %v", v, err)
		}
		shutdown += delay
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil {
		t.Errorf("no terminationGracePeriodSeconds; want more than the %s shutdown", shutdown)
	} else if time.Duration(*g)*time.Second <= shutdown {
		t.Errorf("terminationGracePeriodSeconds = %d, want more than the %s shutdown", *g, shutdown)
	}

	// Security: non-root, read-only root file system, no capabilities.
	psc, csc := pod.SecurityContext, c.SecurityContext
	if csc == nil {
		t.Fatal("container has no securityContext")
	}
	nonRoot := (csc.RunAsNonRoot != nil && *csc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if !nonRoot {
		t.Error("runAsNonRoot is not set")
	}
	for _, uid := range []*int64{csc.RunAsUser, func() *int64 {
		if psc != nil {
			return psc.RunAsUser
		}
		return nil
	}()} {
		if uid != nil && *uid == 0 {
			t.Error("runAsUser is 0")
		}
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
		t.Error("capabilities do not drop ALL")
	}
	if csc.Capabilities != nil && len(csc.Capabilities.Add) > 0 {
		t.Errorf("capabilities add %v", csc.Capabilities.Add)
	}

	// Resources.
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Error("no CPU request")
	}
	if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok {
		t.Error("no memory request")
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Error("no memory limit")
	}
}

func TestKubernetesServices(t *testing.T) {
	m := loadManifests(t)
	sts := m.statefulSets[0]
	c := brokerContainer(t, sts)
	headless := checkServices(t, m.services, labels.Set(sts.Spec.Template.Labels), c)
	if !slices.Contains(headless, sts.Spec.ServiceName) {
		t.Errorf("the StatefulSet's serviceName %q is not a headless Service (headless: %v)", sts.Spec.ServiceName, headless)
	}
}

// checkServices checks that the Services select the broker's pods, target
// ports its container declares, and expose every port its args open (MQTT
// over TLS and both HTTP APIs, never plain MQTT). It returns the names of
// the headless ones.
func checkServices(t *testing.T, services []*corev1.Service, podLabels labels.Set, c *corev1.Container) (headless []string) {
	t.Helper()
	// servedBy maps a Service port to the container port it reaches.
	exposes := map[string]map[int32]bool{} // service -> container ports
	for _, svc := range services {
		if len(svc.Spec.Selector) == 0 {
			t.Errorf("Service %s has no selector", svc.Name)
			continue
		}
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s selects %v, which the pod labels %v do not match", svc.Name, svc.Spec.Selector, podLabels)
		}
		exposes[svc.Name] = map[int32]bool{}
		for _, p := range svc.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port) // an unset targetPort is the port
			}
			cp := containerPort(t, c, target)
			found := false
			for _, declared := range c.Ports {
				if declared.ContainerPort == cp {
					found = true
				}
			}
			if !found {
				t.Errorf("Service %s port %s targets container port %d, which the container does not declare", svc.Name, p.Name, cp)
			}
			exposes[svc.Name][cp] = true
		}
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			headless = append(headless, svc.Name)
		}
	}
	has := func(ports ...int32) bool {
		for name, exp := range exposes {
			if slices.Contains(headless, name) {
				continue
			}
			all := true
			for _, p := range ports {
				all = all && exp[p]
			}
			if all {
				return true
			}
		}
		return false
	}
	// Every port the args open is reachable through a (non-headless)
	// Service. The loop above checked that no Service targets a port the
	// container does not declare, and checkBrokerPod that the container
	// declares exactly the ports the args open.
	for _, p := range containerCmdline(c).openPorts(t) {
		if !has(p) {
			t.Errorf("no Service exposes port %d, which the args open", p)
		}
	}
	if !has(mqttTLSPort) {
		t.Errorf("no Service exposes MQTT over TLS (%d)", mqttTLSPort)
	}
	if !has(apiPort, jobsAPIPort) {
		t.Errorf("no Service exposes both HTTP APIs (%d, %d)", apiPort, jobsAPIPort)
	}
	for svc, ports := range exposes {
		if ports[mqttPort] {
			t.Errorf("Service %s exposes plain MQTT (%d)", svc, mqttPort)
		}
	}
	return headless
}

func TestKubernetesServiceMonitor(t *testing.T) {
	m := loadManifests(t)
	checkServiceMonitor(t, m, &m.statefulSets[0].Spec.Template.Spec, brokerContainer(t, m.statefulSets[0]))
}

// checkServiceMonitor checks that m's one ServiceMonitor scrapes /metrics
// through exactly one Service, on the API port of the broker's pods, with
// the broker's TLS settings.
func checkServiceMonitor(t *testing.T, m *manifests, pod *corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	if len(m.serviceMonitors) != 1 {
		t.Fatalf("want exactly one ServiceMonitor, have %d", len(m.serviceMonitors))
	}
	sm := m.serviceMonitors[0]
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("ServiceMonitor selector %v: %v (empty)", sm.Spec.Selector, err)
	}
	var selected []*corev1.Service
	for _, svc := range m.services {
		if sel.Matches(labels.Set(svc.Labels)) {
			selected = append(selected, svc)
		}
	}
	if len(selected) != 1 {
		names := []string{}
		for _, s := range selected {
			names = append(names, s.Name)
		}
		t.Fatalf("ServiceMonitor selects %d Services %v, want exactly the HTTP one (else targets are scraped twice)", len(selected), names)
	}
	svc := selected[0]
	if len(sm.Spec.Endpoints) == 0 {
		t.Fatal("ServiceMonitor has no endpoints")
	}
	for _, ep := range sm.Spec.Endpoints {
		if ep.Port == "" {
			t.Errorf("ServiceMonitor endpoint names no port")
			continue
		}
		var port *corev1.ServicePort
		for i := range svc.Spec.Ports {
			if svc.Spec.Ports[i].Name == ep.Port {
				port = &svc.Spec.Ports[i]
			}
		}
		if port == nil {
			t.Errorf("ServiceMonitor endpoint port %q is not a port name of Service %s", ep.Port, svc.Name)
			continue
		}
		if cp := containerPort(t, c, port.TargetPort); cp != apiPort {
			t.Errorf("ServiceMonitor scrapes container port %d, want %d (where /metrics is)", cp, apiPort)
		}
		if ep.Path != "" && ep.Path != "/metrics" {
			t.Errorf("ServiceMonitor path = %q, want /metrics", ep.Path)
		}
		checkScrapeTLS(t, pod, c, svc, ep)
	}
}

// ---------------------------------------------------------------------------
// Dockerfile, build script, compose

// dockerInstructions returns the Dockerfile's instructions, continuation
// lines joined and comments dropped.
func dockerInstructions(t *testing.T) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(string(readFile(t, "Dockerfile")), "\n") {
		s := strings.TrimSpace(line)
		if strings.HasPrefix(s, "#") || (s == "" && cur.Len() == 0) {
			continue
		}
		if c, ok := strings.CutSuffix(s, "\\"); ok {
			cur.WriteString(c + " ")
			continue
		}
		cur.WriteString(s)
		if ins := strings.TrimSpace(cur.String()); ins != "" {
			out = append(out, ins)
		}
		cur.Reset()
	}
	return out
}

// dockerEntrypoint returns the image's ENTRYPOINT (exec form) and its
// VOLUME mount points.
func dockerEntrypoint(t *testing.T) (entrypoint, volumes []string) {
	t.Helper()
	for _, i := range dockerInstructions(t) {
		word, rest, _ := strings.Cut(i, " ")
		switch strings.ToUpper(word) {
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &entrypoint); err != nil || len(entrypoint) == 0 {
				t.Fatalf("ENTRYPOINT %q is not in exec (JSON) form: %v", rest, err)
			}
		case "VOLUME":
			var v []string
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				t.Fatalf("VOLUME %q is not in JSON form: %v", rest, err)
			}
			volumes = append(volumes, v...)
		}
	}
	if entrypoint == nil {
		t.Fatal("the Dockerfile has no ENTRYPOINT")
	}
	return entrypoint, volumes
}

func TestDockerfile(t *testing.T) {
	ins := dockerInstructions(t)
	var runs []string
	var entrypoint, user string
	var exposed []string
	var volumes string
	froms := 0
	for _, i := range ins {
		word, rest, _ := strings.Cut(i, " ")
		switch strings.ToUpper(word) {
		case "FROM":
			froms++
		case "RUN":
			runs = append(runs, rest)
		case "ENTRYPOINT":
			entrypoint = rest
		case "USER":
			user = rest
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(rest)...)
		case "VOLUME":
			volumes += rest
		}
	}
	if froms < 2 {
		t.Errorf("want a multi-stage build, have %d FROM", froms)
	}
	builds := 0
	for _, r := range runs {
		if strings.Contains(r, "deploy/build.sh") {
			builds++
		}
		if strings.Contains(r, "go build") {
			t.Errorf("the Dockerfile builds with its own `go build` (%q); it must run deploy/build.sh as CI does", r)
		}
	}
	if builds != 1 {
		t.Errorf("the Dockerfile runs deploy/build.sh %d times, want once", builds)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil {
		t.Fatalf("ENTRYPOINT %q is not in exec (JSON) form: %v", entrypoint, err)
	}
	if v, _ := flagValue(ep[1:], "data-dir"); v != "/data" {
		t.Errorf("ENTRYPOINT %v: -data-dir = %q, want /data", ep, v)
	}
	if v, _ := flagValue(ep[1:], "log-format"); v != "json" {
		t.Errorf("ENTRYPOINT %v: -log-format = %q, want json", ep, v)
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("USER %q: the image must run as a non-root user", user)
	}
	for _, p := range []string{"1883", "8080", "8081", "8883"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %v lacks %s", exposed, p)
		}
	}
	for _, v := range []string{"/data", "/certs"} {
		if !strings.Contains(volumes, `"`+v+`"`) {
			t.Errorf("VOLUME %s lacks %s", volumes, v)
		}
	}

	// Secure by default: nothing in the image lets listeners serve
	// anonymous clients beyond loopback (the compose stack and users opt
	// in with -allow-anonymous after the image name).
	for _, i := range ins {
		if strings.Contains(strings.ToLower(strings.ReplaceAll(i, "_", "-")), "allow-anonymous") {
			t.Errorf("the Dockerfile sets allow-anonymous (%q); the image must not serve anonymous clients unless told to", i)
		}
	}
}

func TestBuildScript(t *testing.T) {
	s := string(readFile(t, "build.sh"))
	for _, want := range []string{
		"CGO_ENABLED=0",
		"-trimpath",
		`-s -w -X github.com/jobsbroker/jobsbroker/broker.Version=$version`,
		"git describe --always --dirty",
		"./cmd/jobsbroker",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("build.sh lacks %q", want)
		}
	}
	info, err := os.Stat("build.sh")
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode()&0o111 == 0 {
		t.Error("build.sh is not executable")
	}
}

// TestCompose checks the compose file's wiring: the files it mounts exist,
// Prometheus scrapes the broker's service on the API port.
func TestCompose(t *testing.T) {
	compose := loadCompose(t)
	for _, name := range []string{"jobsbroker", "prometheus", "grafana"} {
		if _, ok := compose.Services[name]; !ok {
			t.Errorf("docker-compose.yml has no %s service", name)
		}
	}
	for name, svc := range compose.Services {
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("service %s mounts %s, which does not exist: %v", name, src, err)
				}
			}
		}
		if b := svc.Build; b != nil {
			if _, err := os.Stat(filepath.Join(b.Context, b.Dockerfile)); err != nil {
				t.Errorf("service %s builds from %s: %v", name, filepath.Join(b.Context, b.Dockerfile), err)
			}
		}
	}
	var prom struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			Scheme        string `json:"scheme"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/prometheus.yml"), &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	scraped := false
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, "jobsbroker:"+strconv.Itoa(apiPort)) && (sc.MetricsPath == "" || sc.MetricsPath == "/metrics") {
				scraped = true
				// The compose broker has no certificate: plain HTTP.
				if sc.Scheme != "" && sc.Scheme != "http" {
					t.Errorf("prometheus.yml scrapes jobsbroker with scheme %q; the compose broker serves plain HTTP", sc.Scheme)
				}
			}
		}
	}
	if !scraped {
		t.Errorf("prometheus.yml does not scrape jobsbroker:%d/metrics", apiPort)
	}
	if !slices.Contains(prom.RuleFiles, "alerts.yml") {
		t.Errorf("prometheus.yml rule_files %v lacks alerts.yml", prom.RuleFiles)
	}
	prometheusMounts := strings.Join(compose.Services["prometheus"].Volumes, " ")
	if !strings.Contains(prometheusMounts, "./prometheus/alerts.yml:/etc/prometheus/alerts.yml") {
		t.Errorf("the prometheus service does not mount alerts.yml beside its config: %s", prometheusMounts)
	}

	// The broker: -allow-anonymous (a local stack, nobody is identified),
	// and it publishes exactly the ports its command line opens.
	broker := compose.Services["jobsbroker"]
	if !boolFlag(broker.Command, "allow-anonymous") {
		t.Errorf("the jobsbroker service's command %v lacks -allow-anonymous: the image alone binds every listener to the container's loopback", broker.Command)
	}
	cl := composeCmdline(t, compose)
	opened := cl.openPorts(t)
	var published []int32
	for _, p := range broker.Ports {
		// [host_ip:]host_port:container_port[/protocol]
		spec, proto, _ := strings.Cut(p, "/")
		parts := strings.Split(spec, ":")
		port, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil || len(parts) < 2 || (proto != "" && proto != "tcp") {
			t.Errorf("the jobsbroker service publishes %q; want [host_ip:]host_port:container_port", p)
			continue
		}
		published = append(published, int32(port))
		// Nothing is identified: keep it off other machines.
		if len(parts) != 3 || !isLoopbackHost(parts[0]) {
			t.Errorf("the jobsbroker service publishes %q on every host interface; the anonymous stack publishes on 127.0.0.1", p)
		}
	}
	slices.Sort(published)
	if !slices.Equal(published, opened) {
		t.Errorf("the jobsbroker service publishes container ports %v; its command line opens %v", published, opened)
	}
}

// composeFile is the part of a compose file the tests read.
type composeFile struct {
	Services map[string]struct {
		Image       string            `json:"image"`
		Command     []string          `json:"command"`
		Environment map[string]string `json:"environment"`
		Volumes     []string          `json:"volumes"`
		Ports       []string          `json:"ports"`
		Build       *struct {
			Context    string `json:"context"`
			Dockerfile string `json:"dockerfile"`
		} `json:"build"`
		DependsOn   composeDependsOn `json:"depends_on"`
		Healthcheck *struct {
			Test []string `json:"test"`
		} `json:"healthcheck"`
	} `json:"services"`
	Volumes map[string]any `json:"volumes"`
}

// composeDependsOn maps the services a service depends on to the
// condition it waits for: depends_on is a list (each service_started) or
// a map of service to {condition}.
type composeDependsOn map[string]string

func (d *composeDependsOn) UnmarshalJSON(b []byte) error {
	*d = composeDependsOn{}
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		for _, s := range list {
			(*d)[s] = "service_started"
		}
		return nil
	}
	var long map[string]struct {
		Condition string `json:"condition"`
	}
	if err := json.Unmarshal(b, &long); err != nil {
		return fmt.Errorf("depends_on is neither a list nor a map: %w", err)
	}
	for s, c := range long {
		if c.Condition == "" {
			c.Condition = "service_started"
		}
		(*d)[s] = c.Condition
	}
	return nil
}

func loadCompose(t *testing.T) *composeFile {
	t.Helper()
	return loadComposeFile(t, "docker-compose.yml")
}

// loadComposeFile reads a compose file as compose does with no variable
// set: ${NAME:-default} is the default, ${NAME} empty, $$ a $.
func loadComposeFile(t *testing.T, name string) *composeFile {
	t.Helper()
	var compose composeFile
	text := composeVariable.ReplaceAllStringFunc(string(readFile(t, name)), func(v string) string {
		m := composeVariable.FindStringSubmatch(v)
		switch {
		case v == "$$":
			return "$"
		case strings.Contains(m[1], "?"):
			t.Fatalf("%s: %s requires a variable; the tests read the file with none set", name, v)
		}
		return m[2]
	})
	if err := yaml.Unmarshal([]byte(text), &compose); err != nil {
		t.Fatalf("%s (command must be a list, environment a map): %v", name, err)
	}
	return &compose
}

// composeVariable is a compose interpolation: $$, ${NAME}, ${NAME:-default},
// ${NAME-default}, ${NAME:?error}, ${NAME?error} or $NAME.
var composeVariable = regexp.MustCompile(`\$\$|\$\{[A-Za-z_][A-Za-z0-9_]*(?:(:?[-?])([^}]*))?\}|\$[A-Za-z_][A-Za-z0-9_]*`)

// TestSystemdUnit checks the unit's reload, shutdown and hardening.
func TestSystemdUnit(t *testing.T) {
	settings := map[string][]string{}
	for _, line := range strings.Split(string(readFile(t, "jobsbroker.service")), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("jobsbroker.service: %q is no Key=value line", line)
			continue
		}
		settings[k] = append(settings[k], v)
	}
	one := func(k string) string {
		if v := settings[k]; len(v) == 1 {
			return v[0]
		}
		t.Errorf("jobsbroker.service: %s is set %d times, want once", k, len(settings[k]))
		return ""
	}
	// SIGHUP re-reads certificates and credentials.
	if v := one("ExecReload"); v != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload = %q, want /bin/kill -HUP $MAINPID", v)
	}
	exec := strings.Fields(one("ExecStart"))
	if len(exec) == 0 || exec[0] != "/usr/local/bin/jobsbroker" {
		t.Fatalf("ExecStart = %v", exec)
	}
	if boolFlag(exec[1:], "allow-anonymous") {
		t.Error("ExecStart sets -allow-anonymous")
	}
	if v, _ := flagValue(exec[1:], "data-dir"); v != "/var/lib/"+one("StateDirectory") {
		t.Errorf("-data-dir %q is not the StateDirectory", v)
	}
	// Stop: longer than the broker's shutdown timeout.
	if d, err := time.ParseDuration(one("TimeoutStopSec")); err != nil || d <= defaultShutdownTimeout {
		t.Errorf("TimeoutStopSec = %v (%v), want more than %s", d, err, defaultShutdownTimeout)
	}
	// Hardening: no capability (443 is a drop-in away, see the unit's
	// comment), nothing writable but the state directory.
	for k, want := range map[string]string{
		"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
		"RestrictSUIDSGID": "yes", "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes",
	} {
		if v := one(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if f := settings["EnvironmentFile"]; len(f) != 1 || !strings.HasPrefix(f[0], "-") {
		t.Errorf("EnvironmentFile = %v, want one optional (-) file", f)
	}
}

// ---------------------------------------------------------------------------
// Metric names in the dashboard and the alerts

// metricName finds the names of the broker's metrics (and of the Go and
// process collectors it registers) in a PromQL expression or a text.
var metricName = regexp.MustCompile(`\b(?:jobsbroker|go|process)_[a-z0-9_]+\b`)

var (
	servedOnce sync.Once
	served     map[string]bool
	servedErr  string
)

// servedMetrics starts a fresh broker, one that has served nothing yet,
// and returns the names of the series its /metrics serves (a histogram's
// _bucket, _sum and _count among them). A family declared without a
// series does not count: on a fresh broker every series the dashboard and
// the alert rules query must already exist, or their panels and rates
// show nothing until the first event.
func servedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	servedOnce.Do(func() {
		// A sub-test's failure would be reported against the first caller
		// only; record it so that every caller fails.
		ok := t.Run("broker", func(t *testing.T) { served = scrapeBroker(t) })
		if !ok {
			servedErr = "starting a broker and scraping its /metrics failed"
		}
	})
	if servedErr != "" {
		t.Fatal(servedErr)
	}
	return served
}

func scrapeBroker(t *testing.T) map[string]bool {
	b := brokertest.Start(t)
	resp, err := http.Get("http://" + b.APIAddr() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			name := line[:i]
			names[name] = true
			if base, ok := strings.CutSuffix(name, "_bucket"); ok {
				names[base] = true // a histogram is named by its family too
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("/metrics has no series:\n%s", body)
	}
	return names
}

// checkNames reports every metric name in text that the broker does not serve.
func checkNames(t *testing.T, served map[string]bool, where, text string) int {
	t.Helper()
	found := metricName.FindAllString(text, -1)
	for _, n := range found {
		if !served[n] {
			t.Errorf("%s: %s is not a metric the broker serves", where, n)
		}
	}
	return len(found)
}

func TestDashboardMetrics(t *testing.T) {
	var dash struct {
		Title         string            `json:"title"`
		UID           string            `json:"uid"`
		SchemaVersion int               `json:"schemaVersion"`
		Panels        []json.RawMessage `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string          `json:"name"`
				Type       string          `json:"type"`
				Query      json.RawMessage `json:"query"`
				Definition string          `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	raw := readFile(t, "grafana/jobsbroker-dashboard.json")
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if dash.SchemaVersion < 36 || dash.UID == "" || dash.Title == "" {
		t.Errorf("dashboard: schemaVersion %d, uid %q, title %q", dash.SchemaVersion, dash.UID, dash.Title)
	}
	hasDatasourceVar := false
	for _, v := range dash.Templating.List {
		if v.Type == "datasource" && strings.Contains(string(v.Query), "prometheus") {
			hasDatasourceVar = true
		}
	}
	if !hasDatasourceVar {
		t.Error("dashboard has no Prometheus datasource variable")
	}

	served := servedMetrics(t)
	n := 0
	var exprs []string
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			title, _ := v["title"].(string)
			if title != "" {
				where = title
			}
			if ds, ok := v["datasource"].(map[string]any); ok && ds["type"] == "prometheus" && ds["uid"] != "${datasource}" {
				t.Errorf("%s: datasource %v does not use the ${datasource} variable", where, ds)
			}
			if d, ok := v["description"].(string); ok {
				checkNames(t, served, where+" (description)", d)
			}
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
					if c := checkNames(t, served, where, s); c == 0 {
						t.Errorf("%s: expression %q uses no broker metric", where, s)
					}
					n++
				}
				walk(where, x)
			}
		case []any:
			for _, x := range v {
				walk(where, x)
			}
		}
	}
	var all map[string]any
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	walk("dashboard", all["panels"])
	for _, v := range dash.Templating.List {
		checkNames(t, served, "variable "+v.Name, v.Definition+" "+string(v.Query))
	}
	if n == 0 {
		t.Fatal("the dashboard has no query")
	}

	// The dashboard shows what the issue asks for.
	joined := strings.Join(exprs, "\n")
	for _, want := range []string{
		"jobsbroker_rollout_backlog_things", "jobsbroker_job_things", "jobsbroker_jobs{",
		"jobsbroker_requests_total", "jobsbroker_request_duration_seconds_bucket",
		"jobsbroker_store_commit_duration_seconds_bucket", "jobsbroker_rejections_total",
		"jobsbroker_mqtt_clients_connected", "jobsbroker_notifications_total",
		"jobsbroker_store_commit_operations", "jobsbroker_store_size_bytes", "jobsbroker_ready",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("the dashboard does not query %s", want)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert         string            `json:"alert,omitempty"`
			Record        string            `json:"record,omitempty"`
			Expr          string            `json:"expr"`
			For           string            `json:"for,omitempty"`
			KeepFiringFor string            `json:"keep_firing_for,omitempty"`
			Labels        map[string]string `json:"labels,omitempty"`
			Annotations   map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

func TestAlertMetrics(t *testing.T) {
	var rules ruleFile
	strictDecode(t, "prometheus/alerts.yml", readFile(t, "prometheus/alerts.yml"), &rules)
	served := servedMetrics(t)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			where := "alert " + r.Alert
			if r.Alert == "" {
				t.Errorf("group %s: a rule that is no alert (record %q)", g.Name, r.Record)
				continue
			}
			alerts[r.Alert] = true
			if checkNames(t, served, where, r.Expr) == 0 && !strings.Contains(r.Expr, "up{") {
				t.Errorf("%s: %q uses no broker metric", where, r.Expr)
			}
			for k, a := range r.Annotations {
				checkNames(t, served, where+" annotation "+k, a)
			}
			if r.Labels["severity"] == "" {
				t.Errorf("%s has no severity label", where)
			}
		}
	}
	for _, want := range []string{"JobsbrokerStoreCommitErrors", "JobsbrokerRejectionSpike", "JobsbrokerRolloutStuck",
		"JobsbrokerNotReady", "JobsbrokerHighRequestLatency"} {
		if !alerts[want] {
			t.Errorf("alerts.yml has no %s", want)
		}
	}

	// The promtool tests feed series of real metrics, and test every alert.
	var tests struct {
		RuleFiles []string `json:"rule_files"`
		Tests     []struct {
			Name        string `json:"name"`
			InputSeries []struct {
				Series string `json:"series"`
			} `json:"input_series"`
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/alerts_test.yml"), &tests); err != nil {
		t.Fatalf("alerts_test.yml: %v", err)
	}
	tested := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, s := range tc.InputSeries {
			checkNames(t, served, "alerts_test.yml "+tc.Name, s.Series)
		}
		for _, a := range tc.AlertRuleTest {
			tested[a.Alertname] = true
		}
	}
	for a := range alerts {
		if !tested[a] {
			t.Errorf("alerts_test.yml does not test %s", a)
		}
	}
}
