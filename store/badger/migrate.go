package badger

import (
	"encoding/json"
	"errors"
	"fmt"

	badgerdb "github.com/dgraph-io/badger/v4"
)

// migrate brings a data directory to schemaVersion. A new directory gets
// it at once. Schema 1 kept each thing's pending executions as one record
// (t<thing>), which every operation on the thing decoded and rewrote
// whole; schema 3 keeps one queue entry per pending execution, in a queue
// per job namespace, and executions know their job's namespace. (Schema 2
// was the queue of development builds, before namespaces.) The migration
// writes the entries of a batch of things and deletes their old records
// in one transaction, batch after batch, then gives the executions of
// namespaced jobs their namespace, and records the new version last: a
// migration cut short by a crash starts again where it stopped, and an
// entry written twice is the same entry.
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
		namespaces, err := s.jobNamespaces()
		if err == nil {
			err = s.migrateExecutions(namespaces)
		}
		n := 0
		if err == nil {
			n, err = s.migrateQueues(namespaces)
		}
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

// migrateQueues turns every t<thing> pending set into queue entries, in
// the queue of each job's namespace (namespaces maps the jobs that have
// one), and returns how many things it migrated.
func (s *Store) migrateQueues(namespaces map[string]string) (int, error) {
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
					if err := txn.Set(queueKey(thing, namespaces[p.JobID], p), appendEntry(nil, p)); err != nil {
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

// jobNamespaces maps the jobs created with a namespaceId to it.
func (s *Store) jobNamespaces() (map[string]string, error) {
	out := map[string]string{}
	err := s.db.View(func(txn *badgerdb.Txn) error {
		return iterate(txn, []byte{prefixJob}, nil, false, true, func(k, v []byte) (bool, error) {
			var job struct {
				NamespaceID string `json:"namespaceId"`
			}
			if err := json.Unmarshal(v, &job); err != nil {
				return false, fmt.Errorf("decode %q: %w", k, err)
			}
			if job.NamespaceID != "" {
				out[string(k[1:])] = job.NamespaceID
			}
			return true, nil
		})
	})
	return out, err
}

// migrateExecutions gives every execution of a namespaced job its job's
// namespace, migrateEntriesPerTxn executions a transaction.
func (s *Store) migrateExecutions(namespaces map[string]string) error {
	for job, ns := range namespaces {
		var after []byte
		for {
			done := false
			err := s.db.Update(func(txn *badgerdb.Txn) error {
				r := &rtx{txn: txn, s: s}
				var keys [][]byte
				err := r.eachKey(jobExecPrefix(job), after, false, func(k []byte) (bool, error) {
					keys = append(keys, k)
					return len(keys) < migrateEntriesPerTxn, nil
				})
				if err != nil {
					return err
				}
				done = len(keys) < migrateEntriesPerTxn
				for _, k := range keys {
					thing, n, ok := parseJobExecKey(k, job)
					if !ok {
						continue
					}
					e, err := r.Execution(thing, job, n)
					if err != nil {
						return err
					}
					if e == nil || e.Namespace == ns {
						continue
					}
					e.Namespace = ns
					if err := txn.Set(execKey(thing, job, n), appendExecution(nil, e)); err != nil {
						return err
					}
				}
				if len(keys) > 0 {
					after = append(keys[len(keys)-1], 0)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("give the executions of job %s its namespace: %w", job, err)
			}
			if done {
				break
			}
		}
	}
	return nil
}
