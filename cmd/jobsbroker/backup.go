package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/store/badger"
)

// backup writes a backup of the store to a file: from a running broker
// over its API (-from), or from the data directory of a stopped one.
func backup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := newSettings("jobsbroker backup", stderr)
	out := s.fs.String("o", "", "file to write the backup to (required)")
	from := s.fs.String("from", "", "base URL of a running broker's API (http://host:8080); without it the data directory is read, and the broker must be stopped")
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
		err = fetchBackup(ctx, *from, f)
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

func fetchBackup(ctx context.Context, base string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/admin/backup", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
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
