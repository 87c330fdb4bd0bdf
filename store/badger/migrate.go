package badger

import (
	"errors"
	"fmt"

	badgerdb "github.com/dgraph-io/badger/v4"
)

// migrate brings a data directory to schemaVersion. A new directory gets
// it at once. Schema 1 kept each thing's pending executions as one record
// (t<thing>), which every operation on the thing decoded and rewrote
// whole; schema 2 keeps one queue entry per pending execution. The
// migration writes the entries of a batch of things and deletes their old
// records in one transaction, batch after batch, and records the new
// version last: a migration cut short by a crash starts again where it
// stopped, and an entry written twice is the same entry.
func (s *Store) migrate() error {
	version, err := s.schema()
	if err != nil {
		return err
	}
	switch version {
	case schemaVersion:
		return nil
	case "":
		// A new directory, or one that never stored anything.
	case schemaV1:
		n, err := s.migrateQueues()
		if err != nil {
			return fmt.Errorf("migrate the data directory from schema 1: %w", err)
		}
		s.log.Info("migrated the store to one queue entry per pending execution", "things", n)
	default:
		return fmt.Errorf("data directory has schema version %q, this build reads %q", version, schemaVersion)
	}
	return s.db.Update(func(txn *badgerdb.Txn) error {
		return txn.Set([]byte(metaSchema), []byte(schemaVersion))
	})
}

// schema reads the directory's schema version ("" when none is stored).
func (s *Store) schema() (string, error) {
	var v []byte
	err := s.db.View(func(txn *badgerdb.Txn) error {
		item, err := txn.Get([]byte(metaSchema))
		if errors.Is(err, badgerdb.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read schema version: %w", err)
	}
	return string(v), nil
}

// migrateThingsPerTxn and migrateEntriesPerTxn bound one migration
// transaction (Badger limits how much one may hold).
const (
	migrateThingsPerTxn  = 256
	migrateEntriesPerTxn = 8192
)

// migrateQueues turns every t<thing> pending set into queue entries and
// returns how many things it migrated.
func (s *Store) migrateQueues() (int, error) {
	total := 0
	for {
		n := 0
		err := s.db.Update(func(txn *badgerdb.Txn) error {
			n = 0
			r := &rtx{txn: txn, s: s}
			type set struct{ k, v []byte }
			var sets []set
			entries := 0
			err := r.each([]byte{prefixThing}, nil, false, func(k, v []byte) (bool, error) {
				sets = append(sets, set{k, v})
				entries += len(v) / 16 // an entry takes at least 16 bytes
				return len(sets) < migrateThingsPerTxn && entries < migrateEntriesPerTxn, nil
			})
			if err != nil {
				return err
			}
			for _, st := range sets {
				thing := string(st.k[1:])
				pending, err := decodePending(st.v)
				if err != nil {
					return fmt.Errorf("decode the pending set of %s: %w", thing, err)
				}
				for i := range pending {
					p := &pending[i]
					if !p.Status.Pending() {
						continue
					}
					if err := txn.Set(queueKey(thing, p), appendEntry(nil, p)); err != nil {
						return err
					}
				}
				if err := txn.Delete(st.k); err != nil {
					return err
				}
			}
			n = len(sets)
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}
