package store

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"sync"
	"time"

	"github.com/jobsbroker/jobsbroker/store/schedule"
)

// What follows is computed the same way by every Store implementation:
// list tokens and page sizes, new ids, rollout bursts, maintenance
// windows, a new job's document and thing groups, and the checks on
// requests that do not depend on how executions are stored.

// DefaultMaxResults is the page size of a list request without
// maxResults.
const DefaultMaxResults = 50

// PageSize returns the page size a list request asks for: maxResults, or
// DefaultMaxResults when it is 0.
func PageSize(maxResults int) (int, error) {
	switch {
	case maxResults == 0:
		return DefaultMaxResults, nil
	case maxResults < 1 || maxResults > MaxListResults:
		return 0, Errorf(ErrInvalidRequest, "maxResults %d must be between 1 and 250", maxResults)
	}
	return maxResults, nil
}

// List tokens are opaque to clients: a position in the store's order
// followed by a CRC-32 of it, base64url-encoded. The checksum makes a
// token the store did not hand out an invalid request rather than a
// position.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// EncodeListToken returns the nextToken of a list that ended at pos.
func EncodeListToken(pos []byte) string {
	b := binary.BigEndian.AppendUint32(append([]byte(nil), pos...), crc32.Checksum(pos, castagnoli))
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeListToken returns the position of a nextToken, or an
// ErrInvalidRequest error for a token EncodeListToken did not make.
func DecodeListToken(tok string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 5 {
		return nil, ErrBadToken()
	}
	pos, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(pos, castagnoli) != sum {
		return nil, ErrBadToken()
	}
	return pos, nil
}

// NameListToken is the nextToken of a name-ordered list that ended at
// last.
func NameListToken(last string) string { return EncodeListToken([]byte(last)) }

// NewID returns a random id in the UUID layout AWS uses for thing and
// group ids.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// RolloutBurst is how many things a rollout at perMinute may queue at
// once: one second's worth, and at least one.
func RolloutBurst(perMinute float64) float64 {
	if perMinute <= 0 {
		return 0
	}
	return max(1, perMinute/60)
}

// ParseWindows parses a job's maintenance windows.
func ParseWindows(specs []MaintenanceWindow) ([]schedule.Window, error) {
	ws := make([]schedule.Window, 0, len(specs))
	for _, m := range specs {
		win, err := schedule.ParseWindow(m.StartTime, m.DurationInMinutes)
		if err != nil {
			return nil, Errorf(ErrInvalidRequest, "maintenance window: %s", err)
		}
		ws = append(ws, win)
	}
	return ws, nil
}

// TargetGroups checks, with group (which fails with ErrNotFound for a
// missing group), that every thing group a job targets exists, and
// returns their names.
func TargetGroups(targets []string, group func(name string) (*ThingGroup, error)) ([]string, error) {
	var groups []string
	for _, arn := range targets {
		kind, name, err := ParseTargetARN(arn)
		if err != nil {
			return nil, err
		}
		if kind != TargetThingGroup {
			continue
		}
		if _, err := group(name); err != nil {
			return nil, err
		}
		groups = append(groups, name)
	}
	return groups, nil
}

// JobDocument returns the document a new job gets, and the document
// before parameter substitution when it differs. With a jobTemplateArn the
// template (in.Template, or else read with template) supplies the document
// and whatever configuration the request leaves out.
func JobDocument(job *Job, in *CreateJobInput, template func(id string) (*JobTemplate, error)) (string, string, error) {
	doc := in.Document
	if t := in.Template; t != nil {
		ApplyTemplate(job, t)
		if doc == t.Document {
			return doc, "", nil
		}
		return doc, t.Document, nil
	}
	if job.JobTemplateArn == "" {
		if len(job.DocumentParameters) > 0 {
			return "", "", Errorf(ErrInvalidRequest, "documentParameters can only be used with a jobTemplateArn")
		}
		return doc, "", nil
	}
	id, err := ParseTemplateARN(job.JobTemplateArn)
	if err != nil {
		return "", "", err
	}
	tmpl, err := template(id)
	if err != nil {
		return "", "", err
	}
	if tmpl.Document == "" {
		return "", "", Errorf(ErrInvalidRequest, "job template %s has no document", id)
	}
	ApplyTemplate(job, tmpl)
	substituted, err := SubstituteParameters(tmpl.Document, job.DocumentParameters)
	if err != nil {
		return "", "", err
	}
	if err := ValidateDocument(substituted); err != nil {
		return "", "", err
	}
	if substituted == tmpl.Document {
		return substituted, "", nil
	}
	return substituted, tmpl.Document, nil
}

// ApplyJobUpdate changes job as an UpdateJob request asks, at now. A job
// being deleted cannot be updated.
func ApplyJobUpdate(job *Job, in *UpdateJobInput, now time.Time) error {
	if job.Status == JobDeletionInProgress {
		return Errorf(ErrInvalidRequest, "job %s is being deleted", job.JobID)
	}
	if in.Description != nil {
		job.Description = *in.Description
	}
	if in.PresignedURLConfig != nil {
		job.PresignedURLConfig = in.PresignedURLConfig
	}
	if in.RolloutConfig != nil {
		job.RolloutConfig = in.RolloutConfig
	}
	if in.AbortConfig != nil {
		job.AbortConfig = in.AbortConfig
	}
	if in.TimeoutConfig != nil {
		job.TimeoutConfig = in.TimeoutConfig
	}
	if in.RetryConfig != nil {
		job.RetryConfig = in.RetryConfig
	}
	job.LastUpdatedAt = now
	return nil
}

// TemplateConfig is the configuration of job that a template created from
// it takes (see FillTemplate).
func TemplateConfig(job *Job) *JobTemplate {
	from := &JobTemplate{
		PresignedURLConfig: job.PresignedURLConfig, RolloutConfig: job.RolloutConfig, AbortConfig: job.AbortConfig,
		TimeoutConfig: job.TimeoutConfig, RetryConfig: job.RetryConfig, DestinationPackageVersions: job.DestinationPackageVersions,
	}
	if job.SchedulingConfig != nil {
		from.MaintenanceWindows = job.SchedulingConfig.MaintenanceWindows
	}
	return from
}

// CheckCancelExecution checks that execution e of thing may be canceled
// as in asks.
func CheckCancelExecution(e *Execution, thing string, in *CancelExecutionInput) error {
	switch {
	case in.ExpectedVersion != nil && *in.ExpectedVersion != e.VersionNumber:
		return Errorf(ErrVersionConflict, "expectedVersion %d does not match the execution's versionNumber %d", *in.ExpectedVersion, e.VersionNumber)
	case e.Status.Terminal():
		return Errorf(ErrInvalidStateTransition, "job execution %s on %s is already %s", in.JobID, thing, e.Status)
	case e.Status == StatusInProgress && !in.Force:
		return Errorf(ErrInvalidStateTransition, "job execution %s on %s is IN_PROGRESS; cancel it with force", in.JobID, thing)
	}
	return nil
}

// DocCache keeps job documents by job sequence number (documents never
// change once a job exists), up to a total size; when full it starts
// over. The zero value is not usable: call Init.
type DocCache struct {
	mu    sync.Mutex
	docs  map[uint64]string
	bytes int
	limit int
}

// Init empties the cache and sets its size limit in bytes.
func (c *DocCache) Init(limit int) { c.docs, c.limit = map[uint64]string{}, limit }

// Get returns the document of the job with sequence number seq.
func (c *DocCache) Get(seq uint64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.docs[seq]
	return d, ok
}

// Put remembers the document of the job with sequence number seq.
func (c *DocCache) Put(seq uint64, doc string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bytes+len(doc) > c.limit {
		c.docs, c.bytes = map[uint64]string{}, 0
	}
	if _, ok := c.docs[seq]; !ok {
		c.docs[seq] = doc
		c.bytes += len(doc)
	}
}
