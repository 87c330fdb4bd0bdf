// Package deploy holds no code: the folder is how jobsbroker is built and
// run outside `go run`. build.sh builds the release binary (CI and the
// Dockerfile both run it); Dockerfile builds the container image, whose
// entrypoint serves nobody beyond loopback until given identity and
// credential settings; docker-compose.yml runs the broker anonymously
// (-allow-anonymous, a local stack) with Prometheus and Grafana;
// kubernetes/ holds a StatefulSet with mTLS devices, SigV4-signed API calls
// and HTTPS from two Secrets, its Services and a ServiceMonitor that scrapes
// over HTTPS; kubernetes/cluster/ the same as a Deployment of several nodes
// on PostgreSQL, with a PodDisruptionBudget; docker-compose.cluster.yml two
// anonymous nodes on PostgreSQL behind HAProxy (haproxy/); grafana/ the
// dashboard; prometheus/ the alerting rules with their promtool tests;
// jobsbroker.service the hardened systemd unit; README.md how to make the
// certificates, keys and Secrets.
//
// deploy_test.go checks that these files are well-formed and wired to each
// other and to the metrics a real broker serves; security_test.go that every
// listener the StatefulSet opens identifies its clients, runs the real
// binary with the StatefulSet's and the compose stack's exact command lines
// (and the README's openssl and kubectl commands), and checks that each
// refuses to serve the network without its security settings;
// cluster_test.go checks the cluster files' wiring (HAProxy's configuration
// included) and runs two brokers with the Deployment's and with the compose
// cluster's command lines on one PostgreSQL database; validate.sh runs
// promtool, the compose checker, kustomize, haproxy -c and systemd-analyze.
package deploy
