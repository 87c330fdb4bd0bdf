package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
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

// backup writes a backup of the store to a file: from a running broker
// over its API (-from), or from the data directory of a stopped one.
func backup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := newSettings("jobsbroker backup", stderr)
	out := s.fs.String("o", "", "file to write the backup to (required)")
	from := s.fs.String("from", "", "base URL of a running broker's API (http://host:8080); without it the data directory is read, and the broker must be stopped")
	ca := s.fs.String("ca", "", "PEM bundle of the CA that signed the API's certificate, for -from https://...")
	if err := s.load(args, getenv); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("backup: -o FILE is required")
	}
	tmp := *out + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp)
	if *from != "" {
		err = fetchBackup(ctx, *from, *ca, getenv, f)
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
	if err := os.Rename(tmp, *out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintln(stdout, "backup written to", *out)
	return nil
}

// fetchBackup streams GET /admin/backup into w. The request is signed
// (SigV4, service iot) with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when
// they are set, as a broker with a credentials file requires.
func fetchBackup(ctx context.Context, base, caFile string, getenv func(string) string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/admin/backup", nil)
	if err != nil {
		return err
	}
	if key := getenv("AWS_ACCESS_KEY_ID"); key != "" {
		region := cmp.Or(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"), broker.DefaultRegion)
		creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: getenv("AWS_SECRET_ACCESS_KEY"), SessionToken: getenv("AWS_SESSION_TOKEN")}
		emptySHA256 := hex.EncodeToString(sha256.New().Sum(nil))
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, emptySHA256, "iot", region, time.Now()); err != nil {
			return fmt.Errorf("sign the backup request: %w", err)
		}
	}
	client := &http.Client{}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
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

func backupDir(ctx context.Context, s *settings, w io.Writer) error {
	st, err := badger.Open(badger.Options{Dir: filepath.Join(s.DataDir, "jobs"), GCInterval: -1})
	if err != nil {
		return fmt.Errorf("open the store (is the broker still running? then use -from): %w", err)
	}
	defer st.Close()
	_, err = st.Backup(ctx, w)
	return err
}

// restore loads a backup into an empty data directory.
func restore(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := newSettings("jobsbroker restore", stderr)
	in := s.fs.String("i", "", "backup file to restore (required)")
	if err := s.load(args, getenv); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("restore: -i FILE is required")
	}
	f, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	if err := badger.Restore(filepath.Join(s.DataDir, "jobs"), f); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintln(stdout, "restored", *in, "into", s.DataDir)
	return nil
}
