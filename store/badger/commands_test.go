package badger

import (
	"sync"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

func TestCommandContract(t *testing.T) {
	storetest.RunCommands(t, false, func(t *testing.T, clk clock.Clock) storetest.CommandNodes {
		dir := t.TempDir()
		var mu sync.Mutex
		var cur *Store
		open := func() *Store {
			s, err := Open(Options{Dir: dir, Clock: clk, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			if cur != nil {
				cur.Close()
			}
		})
		return storetest.CommandNodes{
			Open: func(string) store.CommandStore {
				mu.Lock()
				defer mu.Unlock()
				if cur == nil {
					cur = open()
				}
				return cur
			},
			Restart: func(string) store.CommandStore {
				mu.Lock()
				defer mu.Unlock()
				if cur != nil {
					cur.Close()
				}
				cur = open()
				return cur
			},
			Stop: func(string) {
				mu.Lock()
				defer mu.Unlock()
				if cur != nil {
					cur.Close()
					cur = nil
				}
			},
		}
	})
}
