package deploy_test

// The cluster deployments: kubernetes/cluster/, a Deployment of broker
// nodes on one PostgreSQL database, and docker-compose.cluster.yml, two
// nodes, PostgreSQL and HAProxy (haproxy/haproxy.cfg). Their wiring is
// checked statically, then the real binary is started twice with each
// one's command line, on the database of JOBSBROKER_TEST_POSTGRES_URL.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
	"github.com/jackc/pgx/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

const (
	clusterDir     = "kubernetes/cluster"
	clusterCompose = "docker-compose.cluster.yml"
	haproxyConfig  = "haproxy/haproxy.cfg"
	// haproxyImageConfig is where the official haproxy image reads its
	// configuration.
	haproxyImageConfig = "/usr/local/etc/haproxy/haproxy.cfg"
	storeURLEnv        = "JOBSBROKER_STORE_URL"
	natsURLEnv         = "JOBSBROKER_CLUSTER_NATS_URL"
	nodeIDEnv          = "JOBSBROKER_NODE_ID"
	// minMQTTTimeout is the least idle timeout a load balancer in front of
	// MQTT may have: AWS IoT allows keep-alives up to 1200 s, and a client
	// is only late after one and a half of them.
	minMQTTTimeout = 30 * time.Minute
)

// ---------------------------------------------------------------------------
// Kubernetes

// cluster is deploy/kubernetes/cluster decoded, with its one Deployment
// and that Deployment's broker container.
type cluster struct {
	m *manifests
	d *appsv1.Deployment
	c *corev1.Container
	// NATS (nats.yaml), set apart from the broker's objects.
	nats         *appsv1.StatefulSet
	natsServices []*corev1.Service
}

func (k *cluster) pod() *corev1.PodSpec { return &k.d.Spec.Template.Spec }

// replicas is the Deployment's replica count (the API server's default: 1).
func (k *cluster) replicas() int32 {
	if r := k.d.Spec.Replicas; r != nil {
		return *r
	}
	return 1
}

func loadCluster(t *testing.T) *cluster {
	t.Helper()
	m := decodeManifests(t, clusterDir)
	k := &cluster{m: m}
	isNATS := func(l map[string]string) bool { return l["app.kubernetes.io/name"] == "nats" }
	m.statefulSets = slices.DeleteFunc(m.statefulSets, func(s *appsv1.StatefulSet) bool {
		if isNATS(s.Spec.Template.Labels) {
			k.nats = s
			return true
		}
		return false
	})
	m.services = slices.DeleteFunc(m.services, func(s *corev1.Service) bool {
		if isNATS(s.Spec.Selector) {
			k.natsServices = append(k.natsServices, s)
			return true
		}
		return false
	})
	if k.nats == nil {
		t.Fatalf("%s has no NATS StatefulSet (app.kubernetes.io/name: nats)", clusterDir)
	}
	if len(m.statefulSets) != 0 {
		t.Fatalf("%s holds %d StatefulSets; the nodes are a Deployment", clusterDir, len(m.statefulSets))
	}
	if len(m.deployments) != 1 {
		t.Fatalf("%s: want exactly one Deployment, have %d", clusterDir, len(m.deployments))
	}
	if len(m.serviceMonitors) != 1 {
		t.Fatalf("%s: want exactly one ServiceMonitor, have %d", clusterDir, len(m.serviceMonitors))
	}
	d := m.deployments[0]
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("Deployment %s: want one container, have %d", d.Name, len(cs))
	}
	k.d, k.c = d, &cs[0]
	return k
}

// envVar returns the container's variable name, or nil.
func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// storeURLRef returns the Secret key JOBSBROKER_STORE_URL comes from.
func storeURLRef(t *testing.T, c *corev1.Container) *corev1.SecretKeySelector {
	t.Helper()
	e := envVar(c, storeURLEnv)
	if e == nil || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Fatalf("%s is %+v; want it from a Secret (secretKeyRef): the URL holds the database's password", storeURLEnv, e)
	}
	return e.ValueFrom.SecretKeyRef
}

// TestKubernetesClusterDeployment checks the Deployment: several
// interchangeable replicas on the PostgreSQL store, with nothing on disk,
// the database URL from a Secret, each node named after its pod, the
// StatefulSet's security and Secrets, and pods spread over machines.
func TestKubernetesClusterDeployment(t *testing.T) {
	k := loadCluster(t)
	spec, pod, c := k.d.Spec, k.pod(), k.c
	cl := containerCmdline(c)

	replicas := k.replicas()
	if replicas < 2 {
		t.Errorf("replicas = %d, want at least 2: one node is no cluster", replicas)
	}
	checkBrokerPod(t, k.m, spec.Selector, &spec.Template, c)
	checkPodSecurity(t, pod, c)

	// The store: PostgreSQL, nothing on disk.
	if v, _ := cl.value("store"); v != "postgres" {
		t.Errorf("-store = %q, want postgres (Badger is one node's own disk)", v)
	}
	if v, ok := cl.value("data-dir"); ok {
		t.Errorf("-data-dir %s: -store postgres keeps nothing there", v)
	}
	for _, v := range pod.Volumes {
		if v.Secret == nil {
			t.Errorf("volume %s is no Secret: the nodes keep nothing on disk (%+v)", v.Name, v.VolumeSource)
		}
	}

	// The database URL, password included, from a Secret.
	if v, ok := flagValue(c.Args, "store-url"); ok {
		t.Errorf("-store-url %s in args: the password would be in the pod spec", v)
	}
	ref := storeURLRef(t, c)
	if ref.Name == "" || ref.Key != "url" {
		t.Errorf("%s comes from Secret %q key %q, want key url", storeURLEnv, ref.Name, ref.Key)
	}
	if ref.Optional != nil && *ref.Optional {
		t.Errorf("%s's Secret is optional: the broker would start without a database", storeURLEnv)
	}

	// Each node is named after its pod, never one name for all.
	if v, ok := flagValue(c.Args, "node-id"); ok {
		t.Errorf("-node-id %s in args: every replica would have that name", v)
	}
	if e := envVar(c, nodeIDEnv); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil ||
		e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("%s is %+v, want the pod's name (fieldRef metadata.name)", nodeIDEnv, e)
	}
	// Other settings are plain: TestKubernetesClusterRuns resolves these two.
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.Name != storeURLEnv && e.Name != nodeIDEnv {
			t.Errorf("env %s comes from %v; give settings as args or plain values, which these tests read", e.Name, e.ValueFrom)
		}
	}

	// The StatefulSet's Secrets, keys and certificate names, so that
	// deploy/README.md (Security) makes them for either.
	single := loadManifests(t)
	sts := single.statefulSets[0]
	stsC := brokerContainer(t, sts)
	for _, f := range fileFlags {
		v, ok := cl.value(f)
		sv, sok := containerCmdline(stsC).value(f)
		if ok != sok {
			t.Errorf("-%s: set in the Deployment %v, in the StatefulSet %v", f, ok, sok)
			continue
		}
		if !ok {
			continue
		}
		secret, key, err := secretFile(pod, c, v)
		stsSecret, stsKey, stsErr := secretFile(&sts.Spec.Template.Spec, stsC, sv)
		if err == nil && stsErr == nil && (secret != stsSecret || key != stsKey) {
			t.Errorf("-%s comes from Secret %s key %s; the StatefulSet's from %s key %s", f, secret, key, stsSecret, stsKey)
		}
	}
	stsNames := certNames(t, single, stsC)
	for _, name := range certNames(t, k.m, c) {
		if !slices.Contains(stsNames, name) {
			t.Errorf("the certificate must carry %s, which the StatefulSet's (and deploy/README.md's) does not: %v", name, stsNames)
		}
	}

	// Rollouts keep a broker ready for the devices of the one that stops.
	if spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		t.Error("strategy Recreate stops every broker at once")
	} else {
		maxUnavailable := intstr.FromString("25%") // the API server's default
		if ru := spec.Strategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
			maxUnavailable = *ru.MaxUnavailable
		}
		down, err := intstr.GetScaledValueFromIntOrPercent(&maxUnavailable, int(replicas), false)
		if err != nil || int32(down) >= replicas {
			t.Errorf("rolling update maxUnavailable %s of %d replicas (%v): a rollout may stop every broker", maxUnavailable.String(), replicas, err)
		}
	}

	// Spread over machines: losing one loses one broker.
	podLabels := labels.Set(spec.Template.Labels)
	selects := func(ls *metav1.LabelSelector) bool {
		sel, err := metav1.LabelSelectorAsSelector(ls)
		return err == nil && !sel.Empty() && sel.Matches(podLabels)
	}
	spread := false
	for _, tsc := range pod.TopologySpreadConstraints {
		if tsc.TopologyKey == corev1.LabelHostname && tsc.MaxSkew == 1 && selects(tsc.LabelSelector) {
			spread = true
		}
	}
	if a := pod.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			spread = spread || (term.TopologyKey == corev1.LabelHostname && selects(term.LabelSelector))
		}
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			spread = spread || (w.PodAffinityTerm.TopologyKey == corev1.LabelHostname && selects(w.PodAffinityTerm.LabelSelector))
		}
	}
	if !spread {
		t.Errorf("no topology spread constraint (maxSkew 1) nor pod anti-affinity on %s selects the broker's pods: both may land on one machine", corev1.LabelHostname)
	}
}

// TestKubernetesClusterServices checks the Services, the ServiceMonitor
// and the PodDisruptionBudget against the Deployment's pods.
func TestKubernetesClusterServices(t *testing.T) {
	k := loadCluster(t)
	podLabels := labels.Set(k.d.Spec.Template.Labels)
	if headless := checkServices(t, k.m.services, podLabels, k.c); len(headless) > 0 {
		t.Errorf("headless Services %v: a Deployment's pods need no stable names", headless)
	}
	checkServiceMonitor(t, k.m, k.pod(), k.c)

	// The StatefulSet's Services by name and port, minus the headless one:
	// clients and the certificate's names stay the same.
	ports := func(svcs []*corev1.Service) map[string][]int32 {
		out := map[string][]int32{}
		for _, svc := range svcs {
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				continue
			}
			for _, p := range svc.Spec.Ports {
				out[svc.Name] = append(out[svc.Name], p.Port)
			}
			slices.Sort(out[svc.Name])
		}
		return out
	}
	have, want := ports(k.m.services), ports(loadManifests(t).services)
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Errorf("the cluster's Services and ports are %v; the StatefulSet's are %v", have, want)
	}

	// The PodDisruptionBudget: the Deployment's pods, one at a time.
	if len(k.m.podDisruptionBudgets) != 1 {
		t.Fatalf("want exactly one PodDisruptionBudget, have %d", len(k.m.podDisruptionBudgets))
	}
	pdb := k.m.podDisruptionBudgets[0]
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("PodDisruptionBudget selector %v: %v (empty)", pdb.Spec.Selector, err)
	}
	if !sel.Matches(podLabels) {
		t.Errorf("PodDisruptionBudget selects %s, which the pod labels %v do not match", sel, podLabels)
	}
	replicas := int(k.replicas())
	switch {
	case pdb.Spec.MinAvailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, replicas, true)
		if err != nil || n < 1 || n >= replicas {
			t.Errorf("PodDisruptionBudget minAvailable %s of %d replicas (%v): want at least 1, and fewer than all (else nodes cannot drain)",
				pdb.Spec.MinAvailable.String(), replicas, err)
		}
	case pdb.Spec.MaxUnavailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, replicas, true)
		if err != nil || n < 1 || n >= replicas {
			t.Errorf("PodDisruptionBudget maxUnavailable %s of %d replicas (%v): want at least 1, and fewer than all",
				pdb.Spec.MaxUnavailable.String(), replicas, err)
		}
	default:
		t.Error("PodDisruptionBudget sets neither minAvailable nor maxUnavailable")
	}
}

// TestKubernetesClusterSecretCommand checks the command kustomization.yaml
// gives for the database URL's Secret: the Secret and key the Deployment
// reads, a PostgreSQL URL that checks the server's certificate, and (with
// kubectl) the Secret kubectl makes of it.
func TestKubernetesClusterSecretCommand(t *testing.T) {
	k := loadCluster(t)
	ref := storeURLRef(t, k.c)
	var comment strings.Builder
	for _, line := range strings.Split(string(readFile(t, filepath.Join(clusterDir, "kustomization.yaml"))), "\n") {
		if rest, ok := strings.CutPrefix(line, "#"); ok {
			comment.WriteString(strings.TrimSpace(rest) + "\n")
		}
	}
	var command string
	for _, cmd := range shellCommands(comment.String()) {
		if strings.HasPrefix(cmd, "kubectl create secret generic "+ref.Name+" ") {
			command = cmd
		}
	}
	if command == "" {
		t.Fatalf("kustomization.yaml does not say how to make Secret %s (kubectl create secret generic %s ...)", ref.Name, ref.Name)
	}
	literals := map[string]string{}
	for _, a := range strings.Fields(command) {
		if v, ok := strings.CutPrefix(a, "--from-literal="); ok {
			key, value, _ := strings.Cut(v, "=")
			literals[key] = strings.Trim(value, `'"`)
		}
	}
	u, err := url.Parse(literals[ref.Key])
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" || u.User == nil {
		t.Fatalf("%q: key %s = %q (%v), want a postgres:// URL with a user", command, ref.Key, literals[ref.Key], err)
	}
	if mode := u.Query().Get("sslmode"); mode != "verify-full" && mode != "verify-ca" {
		t.Errorf("%q: sslmode=%q; the database is across the network: check its certificate (verify-full)", command, mode)
	}

	kubectl := needTool(t, "kubectl", "the Secret command was not run (the checks above passed)")
	dir := t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", command+" --dry-run=client -o yaml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dir, "no-kubeconfig"), "PATH="+filepath.Dir(kubectl)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", command, err, out)
	}
	var sec corev1.Secret
	strictDecode(t, "kubectl output", out, &sec)
	if sec.Name != ref.Name || string(sec.Data[ref.Key]) != literals[ref.Key] {
		t.Errorf("kubectl made Secret %s with %s = %q, want %s with %q", sec.Name, ref.Key, sec.Data[ref.Key], ref.Name, literals[ref.Key])
	}
}

// TestKubernetesClusterRuns starts two brokers with the Deployment's args
// and environment, the database URL its Secret would hold and each pod's
// name, on one database: both become ready, each store knows its node by
// its pod's name, a job created through one is described through the
// other, and a device on the other hears of it.
func TestKubernetesClusterRuns(t *testing.T) {
	k := loadCluster(t)
	dbURL := brokertest.PostgresURL(t)
	natsURL := brokertest.NATS(t).ClientURL()
	pod, c := k.pod(), k.c
	ref := storeURLRef(t, c)
	mat := secretMaterial(t)
	mounts := podVolumes(t, pod, c, mat, nil)

	// Pod names as the Deployment's ReplicaSet makes them.
	podNames := []string{k.d.Name + "-6d5f8b7c9-x2kqp", k.d.Name + "-6d5f8b7c9-m7w4z"}
	var nodes []*deployed
	for _, podName := range podNames {
		cl := containerCmdline(c)
		for _, e := range c.Env {
			switch {
			case e.ValueFrom == nil:
			case e.ValueFrom.SecretKeyRef != nil && *e.ValueFrom.SecretKeyRef == *ref:
				cl.env[e.Name] = dbURL
			case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
				cl.env[e.Name] = podName
			default:
				t.Fatalf("env %s comes from %v, which this test cannot fill in", e.Name, e.ValueFrom)
			}
		}
		if _, ok := cl.env[natsURLEnv]; !ok {
			t.Fatalf("the broker container has no %s to point at the test's NATS instead", natsURLEnv)
		}
		cl.env[natsURLEnv] = natsURL
		nodes = append(nodes, startDeployed(t, cl, mounts))
	}

	// Each store connects to the database under its node's name.
	brokertest.Eventually(t, "both nodes connected to PostgreSQL under their pods' names", func() error {
		names, err := postgresApplications(dbURL)
		if err != nil {
			return err
		}
		for _, podName := range podNames {
			// The store's pool and its LISTEN connection.
			if !slices.Contains(names, "jobsbroker "+podName) && !slices.Contains(names, "jobsbroker listen "+podName) {
				return fmt.Errorf("no connection named after %q among %v", podName, names)
			}
		}
		return nil
	})

	// HTTPS as the ServiceMonitor checks it; signed calls as operators make.
	ep := k.m.serviceMonitors[0].Spec.Endpoints[0]
	if ep.TLSConfig == nil || ep.TLSConfig.CA.Secret == nil || ep.TLSConfig.ServerName == nil {
		t.Fatal("the ServiceMonitor has no tlsConfig with ca and serverName (TestKubernetesClusterServices)")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, mat.files[ep.TLSConfig.CA.Secret.Key])) {
		t.Fatalf("Secret key %s holds no PEM certificate", ep.TLSConfig.CA.Secret.Key)
	}
	tlsConfig := func(serverName string, cert *tls.Certificate) *tls.Config {
		conf := &tls.Config{RootCAs: pool, ServerName: mat.serverName(serverName), MinVersion: tls.VersionTLS12}
		if cert != nil {
			conf.Certificates = []tls.Certificate{*cert}
		}
		return conf
	}
	https := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig(*ep.TLSConfig.ServerName, nil)}}
	cl := containerCmdline(c)
	credsFile, _ := cl.value("credentials-file")
	id, secret := accessKey(t, movePath(mounts, credsFile))
	region, ok := cl.value("region")
	if !ok {
		region = "us-east-1"
	}
	account, ok := cl.value("account")
	if !ok {
		account = "123456789012"
	}
	var operators []*iot.Client
	for i, n := range nodes {
		api := "https://" + n.addrs["api-addr"]
		brokertest.Eventually(t, fmt.Sprintf("node %d (%s) ready", i+1, podNames[i]), func() error {
			req, err := http.NewRequest(http.MethodGet, api+"/readyz", nil)
			if err != nil {
				return err
			}
			resp, err := https.Do(req)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /readyz: %d %s", resp.StatusCode, body)
			}
			return nil
		})
		operators = append(operators, iot.New(iot.Options{
			Region: region, BaseEndpoint: aws.String(api), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
			HTTPClient:  https,
		}))
	}

	// A device on node 1, by its certificate over MQTT/TLS.
	host, _ := cl.value("endpoint-host")
	topic := "$aws/things/" + mat.thing + "/jobs/notify-next"
	dev, err := brokertest.TryConnect(t, brokertest.Dial{URL: "ssl://" + nodes[0].addrs["mqtt-tls-addr"], ID: mat.thing, TLS: tlsConfig(host, &mat.device)})
	if err != nil {
		t.Fatalf("device %s on node 1 over MQTT/TLS: %v", mat.thing, err)
	}
	if err := dev.TrySubscribe(topic, 1); err != nil {
		t.Fatalf("device %s subscribes to its notify-next on node 1: %v", mat.thing, err)
	}

	// A job created through node 2 is node 1's too.
	ctx := context.Background()
	const jobID = "cluster-check"
	arn := "arn:aws:iot:" + region + ":" + account + ":thing/" + mat.thing
	if _, err := operators[1].CreateJob(ctx, &iot.CreateJobInput{
		JobId: aws.String(jobID), Targets: []string{arn}, Document: aws.String(`{"operation":"reboot"}`),
	}); err != nil {
		t.Fatalf("CreateJob through node 2: %v", err)
	}
	out, err := operators[0].DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String(jobID)})
	if err != nil {
		t.Fatalf("DescribeJob through node 1 of a job created through node 2: %v", err)
	}
	if out.Job == nil || aws.ToString(out.Job.JobId) != jobID || !slices.Contains(out.Job.Targets, arn) {
		t.Errorf("DescribeJob through node 1 = %+v, want job %s targeting %s", out.Job, jobID, arn)
	}
	m, ok := dev.Wait(10*time.Second, topic)
	if !ok {
		t.Fatalf("the device on node 1 heard nothing on %s of the job created through node 2", topic)
	}
	if e, _ := m.JSON(t)["execution"].(map[string]any); e == nil || e["jobId"] != jobID {
		t.Errorf("notify-next on node 1 = %s, want job %s", m.Payload, jobID)
	}
}

// postgresApplications returns the application names of the connections
// to the database of dbURL.
func postgresApplications(dbURL string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ---------------------------------------------------------------------------
// HAProxy

// haproxySection is a section of haproxy.cfg: its keyword (global,
// defaults, frontend, backend, resolvers, ...), name and directives, each
// split into words; defaults is the defaults section it inherits from.
type haproxySection struct {
	kind, name string
	directives [][]string
	defaults   *haproxySection
}

// get returns the last directive that starts with words (as HAProxy, where
// a later one overrides an earlier one), and the words after them.
func (s *haproxySection) get(words ...string) ([]string, bool) {
	var found []string
	ok := false
	for _, d := range s.directives {
		if len(d) >= len(words) && slices.Equal(d[:len(words)], words) {
			found, ok = d[len(words):], true
		}
	}
	return found, ok
}

// inherited is get, falling back on the section's defaults.
func (s *haproxySection) inherited(words ...string) ([]string, bool) {
	if v, ok := s.get(words...); ok {
		return v, true
	}
	if s.defaults != nil {
		return s.defaults.get(words...)
	}
	return nil, false
}

// all returns every directive that starts with words, words removed.
func (s *haproxySection) all(words ...string) [][]string {
	var out [][]string
	for _, d := range s.directives {
		if len(d) >= len(words) && slices.Equal(d[:len(words)], words) {
			out = append(out, d[len(words):])
		}
	}
	return out
}

type haproxyCfg struct{ sections []*haproxySection }

func (c *haproxyCfg) section(kind, name string) *haproxySection {
	for _, s := range c.sections {
		if s.kind == kind && s.name == name {
			return s
		}
	}
	return nil
}

var haproxySectionKeywords = []string{"global", "defaults", "frontend", "backend", "listen", "resolvers", "peers", "userlist", "program", "http-errors", "ring", "cache", "mailers"}

// parseHAProxy reads haproxy.cfg's sections and directives (comments
// dropped, words split on blanks; the file uses no quoting).
func parseHAProxy(t *testing.T, path string) *haproxyCfg {
	t.Helper()
	cfg := &haproxyCfg{}
	var cur, defaults *haproxySection
	sc := bufio.NewScanner(strings.NewReader(string(readFile(t, path))))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if slices.Contains(haproxySectionKeywords, f[0]) {
			cur = &haproxySection{kind: f[0], defaults: defaults}
			if len(f) > 1 {
				cur.name = f[1]
			}
			if f[0] == "defaults" {
				cur.defaults, defaults = nil, cur
			}
			cfg.sections = append(cfg.sections, cur)
			continue
		}
		if cur == nil {
			t.Fatalf("%s:%d: %q is outside any section", path, n, line)
		}
		cur.directives = append(cur.directives, f)
	}
	return cfg
}

// haproxyDuration parses an HAProxy time (milliseconds unless a unit
// follows).
func haproxyDuration(s string) (time.Duration, error) {
	num := strings.TrimRight(s, "abcdefghijklmnopqrstuvwxyz")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("time %q: %w", s, err)
	}
	units := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	u, ok := units[s[len(num):]]
	if !ok {
		return 0, fmt.Errorf("time %q: unknown unit", s)
	}
	return time.Duration(n) * u, nil
}

// haproxyServer is a server line of a backend with the default-server
// settings it inherits.
type haproxyServer struct {
	name, host string
	port       int
	opts       []string // default-server (defaults, backend), then its own
}

// opt returns the value of the last keyword in opts, as HAProxy does.
func (s haproxyServer) opt(keyword string) (string, bool) {
	v, ok := "", false
	for i := 0; i+1 < len(s.opts); i++ {
		if s.opts[i] == keyword {
			v, ok = s.opts[i+1], true
		}
	}
	return v, ok
}

func (s haproxyServer) checked() bool { return slices.Contains(s.opts, "check") }

// checkPort is the port its health check goes to.
func (s haproxyServer) checkPort() int {
	if v, ok := s.opt("port"); ok {
		p, _ := strconv.Atoi(v)
		return p
	}
	return s.port
}

func (c *haproxyCfg) servers(t *testing.T, b *haproxySection) []haproxyServer {
	t.Helper()
	var inherited []string
	if b.defaults != nil {
		for _, d := range b.defaults.all("default-server") {
			inherited = append(inherited, d...)
		}
	}
	for _, d := range b.all("default-server") {
		inherited = append(inherited, d...)
	}
	var out []haproxyServer
	for _, d := range b.all("server") {
		if len(d) < 2 {
			t.Fatalf("backend %s: server %v has no address", b.name, d)
		}
		host, port, err := net.SplitHostPort(d[1])
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			t.Fatalf("backend %s: server %s address %q is no host:port", b.name, d[0], d[1])
		}
		out = append(out, haproxyServer{name: d[0], host: host, port: p, opts: append(slices.Clone(inherited), d[2:]...)})
	}
	return out
}

// httpCheck is the request and the expected status of a backend's HTTP
// health check (option httpchk, http-check send, http-check expect).
type httpCheck struct {
	method, uri, version string
	status               int // 0: any 2xx or 3xx
}

func (c *haproxyCfg) httpCheck(b *haproxySection) (httpCheck, bool) {
	args, ok := b.inherited("option", "httpchk")
	if !ok {
		return httpCheck{}, false
	}
	hc := httpCheck{method: "OPTIONS", uri: "/", version: "HTTP/1.0"}
	switch len(args) {
	case 1:
		hc.uri = args[0]
	case 2, 3:
		hc.method, hc.uri = args[0], args[1]
		if len(args) == 3 {
			hc.version = args[2]
		}
	}
	if send, ok := b.get("http-check", "send"); ok {
		for i := 0; i+1 < len(send); i += 2 {
			switch send[i] {
			case "meth":
				hc.method = send[i+1]
			case "uri":
				hc.uri = send[i+1]
			case "ver":
				hc.version = send[i+1]
			}
		}
	}
	if exp, ok := b.get("http-check", "expect", "status"); ok && len(exp) == 1 {
		hc.status, _ = strconv.Atoi(exp[0])
	}
	return hc, true
}

// frontendFor returns the frontend that binds port, and its backend.
func (c *haproxyCfg) frontendFor(t *testing.T, port int32) (fe, be *haproxySection) {
	t.Helper()
	for _, s := range c.sections {
		if s.kind != "frontend" {
			continue
		}
		for _, b := range s.all("bind") {
			if len(b) > 0 && strings.HasSuffix(b[0], ":"+strconv.Itoa(int(port))) {
				name, ok := s.get("default_backend")
				if !ok || len(name) != 1 {
					t.Fatalf("frontend %s has no default_backend", s.name)
				}
				be := c.section("backend", name[0])
				if be == nil {
					t.Fatalf("frontend %s: no backend %s", s.name, name[0])
				}
				return s, be
			}
		}
	}
	return nil, nil
}

// ---------------------------------------------------------------------------
// Compose

// composeCluster is docker-compose.cluster.yml's parts: the broker
// services (those that run the single-node file's broker image), the
// PostgreSQL service and the HAProxy service.
type composeCluster struct {
	compose  *composeFile
	brokers  []string
	postgres string
	haproxy  string
	nats     string
}

func loadComposeCluster(t *testing.T) *composeCluster {
	t.Helper()
	cc := &composeCluster{compose: loadComposeFile(t, clusterCompose)}
	brokerImage := loadCompose(t).Services["jobsbroker"].Image
	for name, svc := range cc.compose.Services {
		switch {
		case svc.Image == brokerImage:
			cc.brokers = append(cc.brokers, name)
		case strings.HasPrefix(svc.Image, "postgres:"):
			cc.postgres = name
		case strings.HasPrefix(svc.Image, "haproxy:"):
			cc.haproxy = name
		case strings.HasPrefix(svc.Image, "nats:"):
			cc.nats = name
		default:
			t.Errorf("%s: service %s (image %q) is neither a broker (%s), PostgreSQL, NATS nor HAProxy", clusterCompose, name, svc.Image, brokerImage)
		}
	}
	slices.Sort(cc.brokers)
	if len(cc.brokers) < 2 || cc.postgres == "" || cc.haproxy == "" || cc.nats == "" {
		t.Fatalf("%s: brokers %v, postgres %q, haproxy %q, nats %q; want two brokers or more, PostgreSQL, NATS and HAProxy",
			clusterCompose, cc.brokers, cc.postgres, cc.haproxy, cc.nats)
	}
	return cc
}

// TestComposeCluster checks the compose cluster's wiring: each broker runs
// the single-node file's image on the postgres service's database, under a
// name of its own, once that database is healthy; HAProxy publishes on the
// host's loopback what the brokers serve and balances it over every broker
// that answers /readyz.
func TestComposeCluster(t *testing.T) {
	cc := loadComposeCluster(t)
	single := loadCompose(t).Services["jobsbroker"]
	pg := cc.compose.Services[cc.postgres]

	// PostgreSQL: a named volume, a health check, the password from a
	// variable with a default.
	if pg.Healthcheck == nil || !slices.Contains(pg.Healthcheck.Test, "pg_isready") {
		t.Errorf("service %s has no pg_isready healthcheck: %+v", cc.postgres, pg.Healthcheck)
	}
	kept := false
	for _, v := range pg.Volumes {
		parts := strings.Split(v, ":")
		if _, named := cc.compose.Volumes[parts[0]]; named && len(parts) >= 2 && parts[1] == "/var/lib/postgresql/data" {
			kept = true
		}
	}
	if !kept {
		t.Errorf("service %s keeps /var/lib/postgresql/data on no named volume: %v", cc.postgres, pg.Volumes)
	}
	if !regexp.MustCompile(`(?m)^\s+POSTGRES_PASSWORD: \$\{POSTGRES_PASSWORD:-[^}]+\}$`).Match(readFile(t, clusterCompose)) {
		t.Errorf("service %s: POSTGRES_PASSWORD is not ${POSTGRES_PASSWORD:-default}", cc.postgres)
	}
	pgUser := pg.Environment["POSTGRES_USER"]
	if pgUser == "" {
		pgUser = "postgres"
	}
	pgDB := pg.Environment["POSTGRES_DB"]
	if pgDB == "" {
		pgDB = pgUser
	}

	// The brokers.
	var brokerPorts []int32
	nodeIDs := map[string]string{}
	for _, name := range cc.brokers {
		svc := cc.compose.Services[name]
		cl := composeServiceCmdline(t, cc.compose, name)
		if single.Build == nil || svc.Build == nil || *svc.Build != *single.Build {
			t.Errorf("service %s builds %+v; docker-compose.yml's broker builds %+v", name, svc.Build, single.Build)
		}
		if v, _ := cl.value("store"); v != "postgres" {
			t.Errorf("service %s: -store = %q, want postgres", name, v)
		}
		if !cl.on("allow-anonymous") {
			t.Errorf("service %s lacks -allow-anonymous: the image alone binds every listener to the container's loopback", name)
		}
		if id, ok := cl.value("node-id"); !ok || id == "" {
			t.Errorf("service %s sets no node id", name)
		} else if other, dup := nodeIDs[id]; dup {
			t.Errorf("services %s and %s are both node %s", other, name, id)
		} else {
			nodeIDs[id] = name
		}
		raw, _ := cl.value("store-url")
		u, err := url.Parse(raw)
		if err != nil || u.User == nil {
			t.Errorf("service %s: store URL %q: %v", name, raw, err)
		} else {
			pw, _ := u.User.Password()
			switch {
			case u.Hostname() != cc.postgres || (u.Port() != "" && u.Port() != "5432"):
				t.Errorf("service %s: the store URL's host is %s; the database is service %s on 5432", name, u.Host, cc.postgres)
			case u.User.Username() != pgUser || pw != pg.Environment["POSTGRES_PASSWORD"] || strings.TrimPrefix(u.Path, "/") != pgDB:
				t.Errorf("service %s: the store URL's user, password and database are %s, %q, %s; service %s makes %s, %q, %s",
					name, u.User.Username(), pw, u.Path, cc.postgres, pgUser, pg.Environment["POSTGRES_PASSWORD"], pgDB)
			}
		}
		if raw, _ := cl.value("cluster-nats-url"); raw != "nats://"+cc.nats+":4222" {
			t.Errorf("service %s: -cluster-nats-url = %q, want nats://%s:4222: without it the nodes are separate brokers", name, raw, cc.nats)
		}
		if _, ok := svc.DependsOn[cc.nats]; !ok {
			t.Errorf("service %s does not depend on %s", name, cc.nats)
		}
		if cond := svc.DependsOn[cc.postgres]; cond != "service_healthy" {
			t.Errorf("service %s depends on %s with condition %q, want service_healthy (else it starts before the database and exits)", name, cc.postgres, cond)
		}
		if len(svc.Ports) > 0 {
			t.Errorf("service %s publishes %v; clients come in through %s", name, svc.Ports, cc.haproxy)
		}
		ports := cl.openPorts(t)
		if brokerPorts != nil && !slices.Equal(ports, brokerPorts) {
			t.Errorf("service %s opens ports %v, %s %v", name, ports, cc.brokers[0], brokerPorts)
		}
		brokerPorts = ports
	}

	// HAProxy: its configuration mounted where the image reads it, started
	// after the brokers, publishing exactly what its frontends bind, on
	// the host's loopback only (nobody is identified).
	hp := cc.compose.Services[cc.haproxy]
	if !slices.Contains(hp.Volumes, "./"+haproxyConfig+":"+haproxyImageConfig+":ro") {
		t.Errorf("service %s does not mount ./%s read-only at %s: %v", cc.haproxy, haproxyConfig, haproxyImageConfig, hp.Volumes)
	}
	for _, b := range cc.brokers {
		if _, ok := hp.DependsOn[b]; !ok {
			t.Errorf("service %s does not depend on %s", cc.haproxy, b)
		}
	}
	cfg := parseHAProxy(t, haproxyConfig)
	var bound []int32
	for _, s := range cfg.sections {
		for _, b := range s.all("bind") {
			_, p, err := net.SplitHostPort(b[0])
			port, perr := strconv.Atoi(p)
			if err != nil || perr != nil {
				t.Errorf("%s: %s %s binds %q, no [host]:port", haproxyConfig, s.kind, s.name, b[0])
				continue
			}
			bound = append(bound, int32(port))
		}
	}
	var published []int32
	for _, p := range hp.Ports {
		spec, proto, _ := strings.Cut(p, "/")
		parts := strings.Split(spec, ":")
		port, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil || len(parts) != 3 || !isLoopbackHost(parts[0]) || (proto != "" && proto != "tcp") {
			t.Errorf("service %s publishes %q; want 127.0.0.1:host_port:container_port: nothing is identified", cc.haproxy, p)
			continue
		}
		published = append(published, int32(port))
	}
	slices.Sort(bound)
	slices.Sort(published)
	if !slices.Equal(bound, published) {
		t.Errorf("service %s publishes container ports %v; %s binds %v", cc.haproxy, published, haproxyConfig, bound)
	}

	// Every broker port: a frontend and a backend of every broker on that
	// port, each checked on its own /readyz.
	for _, port := range brokerPorts {
		fe, be := cfg.frontendFor(t, port)
		if fe == nil {
			t.Errorf("%s: no frontend binds %d, which the brokers serve", haproxyConfig, port)
			continue
		}
		if mode, _ := be.inherited("mode"); len(mode) > 0 && mode[0] != "tcp" {
			t.Errorf("backend %s: mode %s, want tcp (TLS passes through to the broker in production)", be.name, mode[0])
		}
		var hosts []string
		for _, s := range cfg.servers(t, be) {
			hosts = append(hosts, s.host)
			if s.port != int(port) {
				t.Errorf("backend %s: server %s is on port %d; the frontend's is %d", be.name, s.name, s.port, port)
			}
			if !s.checked() {
				t.Errorf("backend %s: server %s is not health-checked", be.name, s.name)
			} else if s.checkPort() != apiPort {
				t.Errorf("backend %s: server %s is checked on port %d; /readyz is on %d", be.name, s.name, s.checkPort(), apiPort)
			}
			if v, _ := s.opt("init-addr"); !slices.Contains(strings.Split(v, ","), "none") {
				t.Errorf("backend %s: server %s has init-addr %q without none: HAProxy would not start while a node is missing", be.name, s.name, v)
			}
		}
		slices.Sort(hosts)
		if !slices.Equal(hosts, cc.brokers) {
			t.Errorf("backend %s balances over %v, want the broker services %v", be.name, hosts, cc.brokers)
		}
		if hc, ok := cfg.httpCheck(be); !ok || hc.method != http.MethodGet || hc.uri != "/readyz" {
			t.Errorf("backend %s: health check %+v (option httpchk: %v), want GET /readyz", be.name, hc, ok)
		}
	}

	// MQTT: long-lived connections, spread by count.
	fe, be := cfg.frontendFor(t, mqttPort)
	if fe == nil {
		t.Fatalf("%s: no frontend binds MQTT (%d)", haproxyConfig, mqttPort)
	}
	if b, _ := be.inherited("balance"); len(b) == 0 || b[0] != "leastconn" {
		t.Errorf("backend %s: balance %v, want leastconn (connections last; a node that comes back fills up)", be.name, b)
	}
	for _, tm := range []struct {
		s    *haproxySection
		side string
	}{{fe, "client"}, {be, "server"}} {
		v, ok := tm.s.inherited("timeout", tm.side)
		if !ok || len(v) != 1 {
			t.Errorf("%s %s: no timeout %s", tm.s.kind, tm.s.name, tm.side)
			continue
		}
		if d, err := haproxyDuration(v[0]); err != nil || d < minMQTTTimeout {
			t.Errorf("%s %s: timeout %s %s (%v): idle MQTT connections are cut before %s", tm.s.kind, tm.s.name, tm.side, v[0], err, minMQTTTimeout)
		}
	}
}

// TestComposeClusterRuns starts the compose cluster's brokers with their
// command lines on one database (standing in for the postgres service),
// checks each the way HAProxy does, and creates a job through one that a
// device on the other hears of and that the other describes.
func TestComposeClusterRuns(t *testing.T) {
	cc := loadComposeCluster(t)
	dbURL := brokertest.PostgresURL(t)
	natsURL := brokertest.NATS(t).ClientURL()
	_, volumes := dockerEntrypoint(t)
	var nodes []*deployed
	for _, name := range cc.brokers {
		mounts := map[string]string{} // each container's own image volumes
		for _, v := range volumes {
			mounts[v] = t.TempDir()
		}
		cl := composeServiceCmdline(t, cc.compose, name)
		if _, ok := cl.env[storeURLEnv]; !ok {
			t.Fatalf("service %s has no %s to point at the test database instead", name, storeURLEnv)
		}
		cl.env[storeURLEnv] = dbURL
		if _, ok := cl.env[natsURLEnv]; !ok {
			t.Fatalf("service %s has no %s to point at the test's NATS instead", name, natsURLEnv)
		}
		cl.env[natsURLEnv] = natsURL
		nodes = append(nodes, startDeployed(t, cl, mounts))
	}

	// HAProxy's health check of the API backend, as its configuration
	// words it, on each node.
	cfg := parseHAProxy(t, haproxyConfig)
	_, be := cfg.frontendFor(t, apiPort)
	if be == nil {
		t.Fatalf("%s: no frontend binds %d", haproxyConfig, apiPort)
	}
	hc, ok := cfg.httpCheck(be)
	if !ok {
		t.Fatalf("backend %s has no option httpchk", be.name)
	}
	for i, n := range nodes {
		brokertest.Eventually(t, fmt.Sprintf("HAProxy's check of %s", cc.brokers[i]), func() error {
			return checkLikeHAProxy(n.addrs["api-addr"], hc)
		})
	}

	// A device on the second node hears of a job created through the
	// first, which the second describes.
	const thing, jobID = "compose-cluster-check", "compose-cluster-job"
	topic := "$aws/things/" + thing + "/jobs/notify-next"
	dev := brokertest.Connect3(t, nodes[1].addrs["mqtt-addr"], thing)
	dev.Subscribe(topic, 1)
	body := fmt.Sprintf(`{"targets":[%q],"document":"{\"operation\":\"reboot\"}"}`, brokertest.ThingARN(thing))
	req, err := http.NewRequest(http.MethodPut, "http://"+nodes[0].addrs["api-addr"]+"/jobs/"+jobID, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	plain := &http.Client{Timeout: 10 * time.Second}
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatalf("CreateJob through %s: %v", cc.brokers[0], err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CreateJob through %s: %d %s", cc.brokers[0], resp.StatusCode, msg)
	}
	code, _, described := get(t, plain, "http://"+nodes[1].addrs["api-addr"]+"/jobs/"+jobID, nil)
	if code != http.StatusOK || !strings.Contains(described, `"jobId":"`+jobID+`"`) {
		t.Errorf("DescribeJob through %s: %d %s", cc.brokers[1], code, described)
	}
	m, ok := dev.Wait(10*time.Second, topic)
	if !ok {
		t.Fatalf("the device on %s heard nothing on %s of the job created through %s", cc.brokers[1], topic, cc.brokers[0])
	}
	if e, _ := m.JSON(t)["execution"].(map[string]any); e == nil || e["jobId"] != jobID {
		t.Errorf("notify-next on %s = %s, want job %s", cc.brokers[1], m.Payload, jobID)
	}

	// One broker: a publish on the first node reaches a subscriber on the
	// second.
	dev.Subscribe("compose/cross", 1)
	brokertest.Connect3(t, nodes[0].addrs["mqtt-addr"], "compose-publisher").Publish("compose/cross", "hello", 1)
	if m, ok := dev.Wait(10*time.Second, "compose/cross"); !ok || string(m.Payload) != "hello" {
		t.Errorf("a publish through %s did not reach a subscriber on %s", cc.brokers[0], cc.brokers[1])
	}
}

// checkLikeHAProxy sends hc's request as HAProxy does (its request line,
// no Host header for HTTP/1.0) and checks the status it expects.
func checkLikeHAProxy(addr string, hc httpCheck) error {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	request := hc.method + " " + hc.uri + " " + hc.version + "\r\n"
	if hc.version != "HTTP/1.0" {
		request += "Host: " + addr + "\r\n"
	}
	if _, err := io.WriteString(conn, request+"Connection: close\r\n\r\n"); err != nil {
		return err
	}
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("no status line: %w", err)
	}
	f := strings.Fields(status)
	if len(f) < 2 {
		return fmt.Errorf("status line %q", status)
	}
	code, err := strconv.Atoi(f[1])
	switch {
	case err != nil:
		return fmt.Errorf("status line %q", status)
	case hc.status != 0 && code != hc.status:
		return fmt.Errorf("%s %s: %d, HAProxy expects %d", hc.method, hc.uri, code, hc.status)
	case hc.status == 0 && (code < 200 || code >= 400):
		return fmt.Errorf("%s %s: %d, HAProxy expects 2xx or 3xx", hc.method, hc.uri, code)
	}
	return nil
}

// TestKubernetesClusterNATS checks the NATS the nodes are one broker
// through: three servers routed to each other by their stable names, a
// Service the broker's -cluster-nats-url names, and a NetworkPolicy that
// lets only the broker's pods be its clients.
func TestKubernetesClusterNATS(t *testing.T) {
	k := loadCluster(t)
	ss := k.nats
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas < 3 {
		t.Errorf("NATS StatefulSet %s: replicas %v, want 3 or more (one server down loses nothing)", ss.Name, ss.Spec.Replicas)
	}
	podLabels := labels.Set(ss.Spec.Template.Labels)
	var client, routes *corev1.Service
	for _, svc := range k.natsServices {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s selects %v, not the NATS pods %v", svc.Name, svc.Spec.Selector, podLabels)
		}
		switch {
		case svc.Spec.ClusterIP == corev1.ClusterIPNone:
			routes = svc
		default:
			client = svc
		}
	}
	if client == nil || routes == nil {
		t.Fatalf("NATS Services %v: want a client Service and a headless one for the routes", k.natsServices)
	}
	if ss.Spec.ServiceName != routes.Name {
		t.Errorf("StatefulSet %s names Service %s; the headless one is %s", ss.Name, ss.Spec.ServiceName, routes.Name)
	}
	cs := ss.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("NATS StatefulSet: %d containers", len(cs))
	}
	var routeArg string
	for _, a := range cs[0].Args {
		if v, ok := strings.CutPrefix(a, "--routes="); ok {
			routeArg = v
		}
	}
	for i := range int(*ss.Spec.Replicas) {
		want := fmt.Sprintf("nats://%s-%d.%s:6222", ss.Name, i, routes.Name)
		if !slices.Contains(strings.Split(routeArg, ","), want) {
			t.Errorf("NATS --routes %q lacks %s", routeArg, want)
		}
	}

	// The brokers name the client Service.
	e := envVar(k.c, natsURLEnv)
	if e == nil || e.Value != fmt.Sprintf("nats://%s:%d", client.Name, client.Spec.Ports[0].Port) {
		t.Errorf("broker %s = %+v, want nats://%s:%d", natsURLEnv, e, client.Name, client.Spec.Ports[0].Port)
	}

	// Only broker pods are NATS's clients.
	if len(k.m.networkPolicies) != 1 {
		t.Fatalf("want one NetworkPolicy, have %d", len(k.m.networkPolicies))
	}
	np := k.m.networkPolicies[0]
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || !sel.Matches(podLabels) {
		t.Fatalf("NetworkPolicy %s applies to %v, not the NATS pods (%v)", np.Name, np.Spec.PodSelector, err)
	}
	brokerPods := labels.Set(k.d.Spec.Template.Labels)
	clientsOK := false
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil || p.Port.IntValue() != 4222 {
				continue
			}
			for _, from := range rule.From {
				s, err := metav1.LabelSelectorAsSelector(from.PodSelector)
				if err == nil && from.PodSelector != nil && s.Matches(brokerPods) && !s.Matches(labels.Set{"app.kubernetes.io/name": "other"}) {
					clientsOK = true
				}
			}
		}
	}
	if !clientsOK {
		t.Error("the NetworkPolicy lets no broker pod reach NATS's port 4222")
	}
}
