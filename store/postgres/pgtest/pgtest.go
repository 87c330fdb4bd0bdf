// Package pgtest gives tests a PostgreSQL database: the one named by
// JOBSBROKER_TEST_POSTGRES_URL, or else a throwaway cluster it starts
// itself from PostgreSQL's server binaries (initdb, pg_ctl), as
// .ci/postgres does, listening on a Unix socket in a temporary directory
// only (no TCP port), with fsync off. When neither is possible the tests
// that need a database are skipped, with the reason, except under CI=true,
// where they fail; Main says on stderr how many were skipped.
package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// EnvURL is the variable that names a database for the tests.
const EnvURL = "JOBSBROKER_TEST_POSTGRES_URL"

var (
	once     sync.Once
	url      string
	startErr error
	stop     func()
	skipped  atomic.Int64
)

// URL returns a connection string for a database the test may create
// schemas in, starting the throwaway cluster on first use. Without one it
// skips the test, or fails it under CI=true.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	once.Do(func() { url, stop, startErr = start() })
	if startErr == nil {
		return url
	}
	msg := "no PostgreSQL for this test: " + startErr.Error() + "; set " + EnvURL +
		` to a database the tests may create schemas in (eval "$(.ci/postgres)" starts one)`
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	skipped.Add(1)
	t.Skip(msg)
	return ""
}

// Main runs the tests and stops the throwaway cluster, if one was
// started; a package that uses URL calls it from its TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if stop != nil {
		stop()
	}
	if n := skipped.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "pgtest: %d tests skipped without PostgreSQL: %v\n", n, startErr)
	}
	os.Exit(code)
}

// binDir finds the newest PostgreSQL server binaries.
func binDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
}

// start initialises and starts a cluster in a temporary directory.
func start() (string, func(), error) {
	bin, err := binDir()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "jobsbroker-pg-")
	if err != nil {
		return "", nil, err
	}
	// PostgreSQL refuses to run as root: root runs it as postgres.
	var wrap []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return "", nil, errors.New("running as root and there is no postgres user to run the server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return "", nil, err
		}
		wrap = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(name string, args ...string) error {
		argv := append(append(slices.Clone(wrap), filepath.Join(bin, name)), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v: %s", name, err, bytes.TrimSpace(out.Bytes()))
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start a throwaway cluster: %w", err)
	}
	opts := "-c listen_addresses='' -k " + dir + " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
	if err := run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start a throwaway cluster: %w", err)
	}
	stop := func() {
		run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	}
	return "host=" + dir + " user=postgres dbname=postgres sslmode=disable", stop, nil
}
