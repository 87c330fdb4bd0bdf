package badger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/jobsbroker/jobsbroker/store"
)

// Backup writes a consistent snapshot of the whole store to w, in Badger's
// backup format, while the store keeps serving. It returns the version the
// snapshot is at.
func (s *Store) Backup(ctx context.Context, w io.Writer) (uint64, error) {
	select {
	case <-s.closing:
		return 0, store.Unavailable("backup", errors.New("store is closed"))
	default:
	}
	stream := s.db.NewStream()
	stream.LogPrefix = "backup"
	return stream.Backup(contextWriter{ctx, w}, 0)
}

// contextWriter stops a backup when its caller goes away.
type contextWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c contextWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Restore loads a backup made by Backup into dir, which must be empty or
// not exist. The broker must not be running on dir.
func Restore(dir string, r io.Reader) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("restore into %s: the directory is not empty; restore into an empty data directory", dir)
	}
	db, err := badgerdb.Open(baseOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	if err := db.Load(r, 256); err != nil {
		db.Close()
		return fmt.Errorf("load backup: %w", err)
	}
	if err := db.Sync(); err != nil {
		db.Close()
		return fmt.Errorf("sync restored store: %w", err)
	}
	return db.Close()
}
