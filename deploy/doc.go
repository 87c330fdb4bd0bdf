// Package deploy holds no code: the folder is how jobsbroker is built and
// run outside `go run`. build.sh builds the release binary (CI and the
// Dockerfile both run it); Dockerfile builds the container image;
// docker-compose.yml runs the broker with Prometheus and Grafana;
// kubernetes/ holds a StatefulSet, its Services and a ServiceMonitor;
// grafana/ the dashboard; prometheus/ the alerting rules with their
// promtool tests; jobsbroker.service the hardened systemd unit.
//
// deploy_test.go checks that these files are well-formed and wired to each
// other and to the metrics a real broker serves; validate.sh runs promtool
// on the Prometheus files.
package deploy
