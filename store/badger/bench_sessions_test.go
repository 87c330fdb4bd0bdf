package badger_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
)

// BenchmarkSessionWrites measures what a PUBACK waits for when a
// persistent session is owed the message: 64 publishers at once, each
// storing one 200-byte message and waiting until it is durable, before the
// next. group-commit writes through the store's committer (WriteSessions),
// as the broker does; update-per-message gives each message a synced
// Badger update of its own, as mochi's Badger storage hook does (with
// synced writes on). Both run in the same invocation; msgs/s is the
// throughput.
func BenchmarkSessionWrites(b *testing.B) {
	const publishers = 64
	data := make([]byte, 200)
	b.Run("group-commit", func(b *testing.B) {
		s, err := badger.Open(badger.Options{Dir: b.TempDir(), Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		if err := s.WriteSessions(ctx, []store.SessionOp{{Kind: store.PutSession, Session: &store.Session{ClientID: "dev"}}}); err != nil {
			b.Fatal(err)
		}
		var seq atomic.Uint64
		runPublishers(b, publishers, func() error {
			return s.WriteSessions(ctx, []store.SessionOp{{Kind: store.PutMessage, ClientID: "dev",
				Message: &store.QueuedMessage{Seq: seq.Add(1), Data: data}}})
		})
	})
	b.Run("update-per-message", func(b *testing.B) {
		db, err := badgerdb.Open(badgerdb.DefaultOptions(b.TempDir()).WithSyncWrites(true).WithLogger(nil).
			WithMemTableSize(16 << 20))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		var seq atomic.Uint64
		runPublishers(b, publishers, func() error {
			key := binary.BigEndian.AppendUint64([]byte("inflight_dev:"), seq.Add(1))
			return db.Update(func(txn *badgerdb.Txn) error { return txn.Set(key, data) })
		})
	})
}

// runPublishers runs b.N writes from n goroutines and reports msgs/s.
func runPublishers(b *testing.B, n int, write func() error) {
	b.SetParallelism(max(1, n/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := write(); err != nil {
				panic(fmt.Sprintf("write: %v", err))
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
