package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/controlplane"
	"github.com/jobsbroker/jobsbroker/broker/metrics"
	"github.com/jobsbroker/jobsbroker/broker/preload"
	"github.com/jobsbroker/jobsbroker/broker/traffic"
	"github.com/jobsbroker/jobsbroker/jobshook/faults"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
)

// What a broker offers tests of device code: a store in memory, a preload,
// faults, transcripts and waiting for an execution's status (admin.go
// serves the last three over HTTP).

// InMemory is the DataDir of a broker that keeps its Badger store in
// memory: nothing is written to disk, and everything is gone when it
// stops.
const InMemory = ":memory:"

// inMemory reports whether the store lives in memory.
func (c *Config) inMemory() bool { return c.Store == StoreBadger && c.DataDir == InMemory }

// buildTesting makes the fault set (empty unless Config.Faults says
// otherwise) and, when asked for, the transcripts, before the MQTT hooks
// that use them.
func (b *Broker) buildTesting() error {
	b.Faults = faults.New()
	if p := b.cfg.Faults; p != nil {
		if err := b.Faults.Replace(*p); err != nil {
			return fmt.Errorf("configuration: faults: %w", err)
		}
	}
	metrics.RegisterFaults(b.cfg.Registry, b.Faults)
	if !b.cfg.Transcripts && b.cfg.TranscriptDir == "" {
		return nil
	}
	t, err := traffic.NewTranscripts(traffic.TranscriptOptions{Dir: b.cfg.TranscriptDir,
		MaxPayload: b.cfg.TranscriptMaxPayload, Logger: b.log.With("component", "transcripts")})
	if err != nil {
		return fmt.Errorf("%s: %w", b.cfg.name("transcript_dir"), err)
	}
	b.Transcripts = t
	b.Faults.Observe(func(ev faults.Event) {
		t.RecordFault(ev.Thing, ev.ClientID, ev.Topic, ev.Fault, ev.Payload)
	})
	return nil
}

// trafficSinks are the recorders the traffic hook feeds besides the
// console's.
func (b *Broker) trafficSinks() []traffic.Sink {
	if b.Transcripts == nil {
		return nil
	}
	return []traffic.Sink{b.Transcripts}
}

// adminAPI is the control plane the preload and /admin/wait call in
// process: the broker's own, without its metrics (they count clients'
// calls).
func (b *Broker) adminAPI(st store.Store) *controlplane.API {
	return controlplane.New(controlplane.Options{Store: st, Region: b.cfg.Region, Account: b.cfg.Account,
		Clock: b.cfg.Clock, Logger: b.log.With("component", "preload"), Artifacts: b.docs.Signer()})
}

// preloadTimeout bounds loading a preload file.
const preloadTimeout = 2 * time.Minute

// preload loads Config.Preload. Nothing is half-loaded: into a store in
// memory the plan goes straight (a failure stops the broker, and the store
// with it); into any other store only once it has loaded whole into a
// scratch store in memory, and only when the store holds nothing yet.
func (b *Broker) preload() error {
	plan := b.cfg.Preload
	if plan.Empty() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), preloadTimeout)
	defer cancel()
	start := time.Now()
	if !b.cfg.inMemory() {
		if err := b.checkEmpty(ctx); err != nil {
			return err
		}
		scratch, err := badger.Open(badger.Options{InMemory: true, Clock: b.cfg.Clock, Logger: b.log.With("component", "preload")})
		if err != nil {
			return fmt.Errorf("preload: open a scratch store: %w", err)
		}
		scratch.SetChangeHandler(nil) // nobody listens: hold none of its changes
		err = plan.Load(ctx, b.adminAPI(scratch), scratch)
		scratch.Close()
		if err != nil {
			return err
		}
	}
	if err := plan.Load(ctx, b.adminAPI(b.Store), b.Store); err != nil {
		return err
	}
	counts := plan.Counts()
	b.log.Info("preloaded", "things", counts["things"], "thing_groups", counts["thingGroups"],
		"job_templates", counts["jobTemplates"], "jobs", counts["jobs"], "took", time.Since(start))
	return nil
}

// checkEmpty refuses to preload a store that holds anything a preload
// creates: loading would stop half-way at the first name in use.
func (b *Broker) checkEmpty(ctx context.Context) error {
	st := b.Store
	one := store.PageInput{MaxResults: 1}
	things, err := st.ListThings(ctx, &one)
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	groups, err := st.ListThingGroups(ctx, &store.ListThingGroupsInput{PageInput: one})
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	templates, err := st.ListJobTemplates(ctx, &one)
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	jobs, err := st.ListJobs(ctx, &store.ListJobsInput{MaxResults: 1})
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	if len(things.Things)+len(groups.Groups)+len(templates.Templates)+len(jobs.Jobs) > 0 {
		return errors.New("preload: the store already holds things, groups, templates or jobs; " +
			"a preload goes into an empty store only (" + b.cfg.name("data_dir") + " " + InMemory + " starts empty every time)")
	}
	return nil
}

// closeTesting closes the transcript files.
func (b *Broker) closeTesting() error {
	if b.Transcripts == nil {
		return nil
	}
	if err := b.Transcripts.Close(); err != nil {
		return fmt.Errorf("close transcripts: %w", err)
	}
	return nil
}

// mountAdminTesting serves /admin/faults, /admin/transcript and
// /admin/wait on the API listener, behind the same signature check as the
// control plane.
func (b *Broker) mountAdminTesting(mux *http.ServeMux) {
	a := &admin{b: b, api: b.adminAPI(b.Store)}
	mux.Handle("GET /admin/faults", b.signedOnly(http.HandlerFunc(a.listFaults)))
	mux.Handle("PUT /admin/faults", b.signedOnly(http.HandlerFunc(a.replaceFaults)))
	mux.Handle("POST /admin/faults", b.signedOnly(http.HandlerFunc(a.addFaults)))
	mux.Handle("DELETE /admin/faults", b.signedOnly(http.HandlerFunc(a.deleteFaults)))
	mux.Handle("GET /admin/transcript", b.signedOnly(http.HandlerFunc(a.transcript)))
	mux.Handle("GET /admin/wait", b.signedOnly(http.HandlerFunc(a.wait)))
}

// LoadPreload loads a preload plan into the running broker through the
// same calls as a preload at start. It may stop half-way, at the first
// item the API refuses: there is no scratch run and no emptiness check,
// since the broker already serves.
func (b *Broker) LoadPreload(ctx context.Context, plan *preload.Plan) error {
	return plan.Load(ctx, b.adminAPI(b.Store), b.Store)
}
