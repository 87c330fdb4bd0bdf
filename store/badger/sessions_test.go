package badger

import (
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

func TestSessionContract(t *testing.T) {
	storetest.RunSessions(t, false, func(t *testing.T) storetest.SessionNodes {
		s, err := Open(Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return func(string) store.SessionStore { return s }
	})
}
