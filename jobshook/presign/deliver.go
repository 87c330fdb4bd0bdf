package presign

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// JobReader reads a job's configuration; store.Store is one.
type JobReader interface {
	DescribeJob(ctx context.Context, jobID string) (*store.Job, error)
}

// maxCached bounds the per-job memory of a Deliverer; past it the cache
// starts over.
const maxCached = 1 << 16

// Deliverer prepares job documents for delivery to devices: it replaces
// their presigned-URL placeholders, each time, with URLs valid for the
// job's presignedUrlConfig.expiresInSec. Whether a job's document holds a
// placeholder is worked out once per job (documents never change), so a
// document without one costs a map lookup. A nil *Deliverer hands every
// document over unchanged.
type Deliverer struct {
	signer *Signer // nil: no artifact store configured
	jobs   JobReader
	log    *slog.Logger

	mu     sync.Mutex
	plain  map[uint64]bool // job sequence number -> the document has no placeholder
	warned map[uint64]bool // jobs whose placeholders could not be signed, logged once
}

// NewDeliverer returns a Deliverer that signs with signer (nil when the
// broker has no artifact store: placeholders are then delivered as they
// are, with one warning per job) and reads job configuration from jobs.
func NewDeliverer(signer *Signer, jobs JobReader, log *slog.Logger) *Deliverer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Deliverer{signer: signer, jobs: jobs, log: log, plain: map[uint64]bool{}, warned: map[uint64]bool{}}
}

// Signer returns the signer, or nil when there is no artifact store.
func (d *Deliverer) Signer() *Signer {
	if d == nil {
		return nil
	}
	return d.signer
}

// Document returns the document of job jobID (creation number seq) as a
// device receives it now. It never fails: the reply it goes into may
// acknowledge a committed change. When the job's configuration cannot be
// read, URLs get the shortest lifetime AWS allows, which never outlives
// the one configured.
func (d *Deliverer) Document(ctx context.Context, jobID string, seq uint64, doc string) string {
	if d == nil || doc == "" {
		return doc
	}
	d.mu.Lock()
	plain, known := d.plain[seq]
	d.mu.Unlock()
	if known && plain {
		return doc
	}
	if !known {
		plain = !Has(doc)
		d.mu.Lock()
		if len(d.plain) >= maxCached {
			clear(d.plain)
		}
		d.plain[seq] = plain
		d.mu.Unlock()
		if plain {
			return doc
		}
	}
	if d.signer == nil {
		d.warnOnce(seq, "a job document holds presigned-URL placeholders but the broker has no artifact store; devices receive them unreplaced", jobID)
		return doc
	}
	ttl, err := d.expiry(ctx, jobID)
	if err != nil {
		d.log.Warn("signing presigned URLs for the shortest lifetime: the job's presignedUrlConfig could not be read", "job", jobID, "error", err)
		ttl = MinExpiry
	}
	out, err := d.signer.Expand(doc, ttl)
	if err != nil {
		// CreateJob checked the placeholders; a document stored before
		// that check existed is delivered as it is.
		d.warnOnce(seq, "a job document's presigned-URL placeholders cannot be replaced: "+err.Error(), jobID)
		return doc
	}
	return out
}

// expiry reads the job's presignedUrlConfig.expiresInSec. It is read on
// every delivery, not cached, so that an UpdateJob made on any node
// applies at once; only documents with placeholders pay for it.
func (d *Deliverer) expiry(ctx context.Context, jobID string) (time.Duration, error) {
	job, err := d.jobs.DescribeJob(ctx, jobID)
	if err != nil {
		return 0, fmt.Errorf("read job %s for its presignedUrlConfig: %w", jobID, err)
	}
	if c := job.PresignedURLConfig; c != nil && c.ExpiresInSec != nil {
		return time.Duration(*c.ExpiresInSec) * time.Second, nil
	}
	return DefaultExpiry, nil
}

func (d *Deliverer) warnOnce(seq uint64, msg, jobID string) {
	d.mu.Lock()
	seen := d.warned[seq]
	if !seen {
		if len(d.warned) >= maxCached {
			clear(d.warned)
		}
		d.warned[seq] = true
	}
	d.mu.Unlock()
	if !seen {
		d.log.Warn(msg, "job", jobID)
	}
}
