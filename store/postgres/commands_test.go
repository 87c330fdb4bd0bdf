package postgres

import (
	"sync"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

func TestCommandContract(t *testing.T) {
	testURL(t)
	storetest.RunCommands(t, true, func(t *testing.T, clk clock.Clock) storetest.CommandNodes {
		url, schema := freshSchema(t)
		var mu sync.Mutex
		nodes := map[string]*Store{}
		return storetest.CommandNodes{
			Open: func(name string) store.CommandStore {
				mu.Lock()
				defer mu.Unlock()
				if nodes[name] == nil {
					nodes[name] = openNode(t, url, schema, name, clk, 4)
				}
				return nodes[name]
			},
			Restart: func(name string) store.CommandStore {
				mu.Lock()
				defer mu.Unlock()
				if n := nodes[name]; n != nil {
					n.Close()
				}
				nodes[name] = openNode(t, url, schema, name, clk, 4)
				return nodes[name]
			},
			Stop: func(name string) {
				mu.Lock()
				defer mu.Unlock()
				if n := nodes[name]; n != nil {
					n.Close()
					delete(nodes, name)
				}
			},
		}
	})
}
