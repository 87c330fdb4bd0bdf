package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/store/badger"
)

var backupCmd = &command{
	name:     "backup",
	synopsis: "-o FILE [-from URL [-ca FILE]] [-data-dir DIR] [-config FILE]",
	short:    "write a backup of the store to a file",
	long: `
Backup writes a consistent backup of the store (Badger's backup format) to
FILE, which appears only once it is complete.

With -from it streams the backup from a running broker's API
(GET /admin/backup), signed with AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY (and AWS_REGION) when they are set, as a broker with
a credentials file requires. Without -from it reads the data directory of
a stopped broker. -data-dir, like serve's, may also come from the -config
file or JOBSBROKER_DATA_DIR.`,
	flags: func(c *cli) (*flag.FlagSet, func(context.Context, []string) error) {
		s := newSettings("backup")
		fs := s.share("backup", "config", "data-dir")
		out := fs.String("o", "", "file to write the backup to (required)")
		from := fs.String("from", "", "base URL of a running broker's API (http://localhost:8080); without it the data directory is read, and the broker must be stopped")
		ca := fs.String("ca", "", "PEM bundle of the CA that signed the API's certificate, for -from https://...")
		return fs, func(ctx context.Context, args []string) error {
			if err := s.finish(fs, args, c.getenv); err != nil {
				return err
			}
			if *out == "" {
				return &usageError{cmd: "backup", err: errors.New("backup needs -o FILE")}
			}
			return backup(ctx, s, *out, *from, *ca, c)
		}
	},
}

// backup writes a backup of the store to a file: from a running broker
// over its API (from), or from the data directory of a stopped one.
func backup(ctx context.Context, s *settings, out, from, ca string, c *cli) error {
	tmp := out + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp)
	if from != "" {
		err = fetchBackup(ctx, from, ca, c.getenv, f)
	} else {
		err = backupDir(ctx, s, f)
	}
	if cerr := f.Sync(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintln(c.stdout, "backup written to", out)
	return nil
}

// fetchBackup streams GET /admin/backup into w. The request is signed
// (SigV4, service iot) with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when
// they are set, as a broker with a credentials file requires.
func fetchBackup(ctx context.Context, base, caFile string, getenv func(string) string, w io.Writer) error {
	req, err := adminRequest(ctx, base+"/admin/backup", getenv)
	if err != nil {
		return err
	}
	client, err := adminClient(caFile)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s answered %s: %s", base, resp.Status, msg)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return err
	}
	if resp.Trailer.Get(broker.BackupCompleteTrailer) != "true" {
		return errors.New("the broker did not finish the backup stream")
	}
	return nil
}

// adminRequest returns a GET of a broker's admin endpoint, signed (SigV4,
// service iot) with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when they
// are set, as a broker with a credentials file requires.
func adminRequest(ctx context.Context, url string, getenv func(string) string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if key := getenv("AWS_ACCESS_KEY_ID"); key != "" {
		region := cmp.Or(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"), broker.DefaultRegion)
		creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: getenv("AWS_SECRET_ACCESS_KEY"), SessionToken: getenv("AWS_SESSION_TOKEN")}
		emptySHA256 := hex.EncodeToString(sha256.New().Sum(nil))
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, emptySHA256, "iot", region, time.Now()); err != nil {
			return nil, fmt.Errorf("sign the request: %w", err)
		}
	}
	return req, nil
}

// adminClient is an HTTP client for a broker's API, trusting the CA in
// caFile when one is given (for https:// URLs).
func adminClient(caFile string) (*http.Client, error) {
	client := &http.Client{}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return client, nil
}

func backupDir(ctx context.Context, s *settings, w io.Writer) error {
	dir := filepath.Join(s.DataDir, "jobs")
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		return fmt.Errorf("no store in %s (%s): %w", s.DataDir, s.name("data-dir"), err)
	}
	st, err := badger.Open(badger.Options{Dir: dir, GCInterval: -1, NoBackground: true})
	if lockedByAnother(err) {
		return fmt.Errorf("the data directory %s is in use by a running broker: back it up over its API with -from http://HOST:8080", s.DataDir)
	}
	if err != nil {
		return fmt.Errorf("open the store: %w", err)
	}
	defer st.Close()
	_, err = st.Backup(ctx, w)
	return err
}

var restoreCmd = &command{
	name:     "restore",
	synopsis: "-i FILE [-data-dir DIR] [-config FILE]",
	short:    "load a backup into an empty data directory",
	long: `
Restore loads a backup written by jobsbroker backup into a data directory
that is empty or does not exist yet; start the broker on it afterwards.
-data-dir, like serve's, may also come from the -config file or
JOBSBROKER_DATA_DIR.`,
	flags: func(c *cli) (*flag.FlagSet, func(context.Context, []string) error) {
		s := newSettings("restore")
		fs := s.share("restore", "config", "data-dir")
		in := fs.String("i", "", "backup file to restore (required)")
		return fs, func(ctx context.Context, args []string) error {
			if err := s.finish(fs, args, c.getenv); err != nil {
				return err
			}
			if *in == "" {
				return &usageError{cmd: "restore", err: errors.New("restore needs -i FILE")}
			}
			return restore(s, *in, c.stdout)
		}
	},
}

// restore loads a backup into an empty data directory.
func restore(s *settings, in string, stdout io.Writer) error {
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	err = badger.Restore(filepath.Join(s.DataDir, "jobs"), f)
	if lockedByAnother(err) {
		return fmt.Errorf("restore: the data directory %s is in use by a running broker; restore into an empty directory", s.DataDir)
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintln(stdout, "restored", in, "into", s.DataDir)
	return nil
}
