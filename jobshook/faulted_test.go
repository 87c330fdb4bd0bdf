package jobshook

import (
	"testing"

	"github.com/jobsbroker/jobsbroker/jobshook/faults"
)

// BenchmarkRequestFaults is what fault injection costs a request on the
// device path (a GetPendingJobExecutions through OnPublish, on a Badger
// store in memory): without a fault set, with an empty one, and with a
// fault armed for another thing.
func BenchmarkRequestFaults(b *testing.B) {
	other := faults.New()
	if err := other.Add(faults.Fault{Kind: faults.Drop, Thing: "someone-else"}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		set  *faults.Set
	}{{"none", nil}, {"unarmed", faults.New()}, {"armed-other-thing", other}} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b, func(o *Options) { o.Faults = c.set })
			cl, w := newPipeClient(b, f.server, "pump-1", false)
			go func() {
				for range w.packets {
				}
			}()
			pk := publish("$aws/things/pump-1/jobs/get", `{}`, 0)
			for b.Loop() {
				f.hook.OnPublish(cl, pk)
			}
		})
	}
}
