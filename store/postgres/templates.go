package postgres

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store"
)

// template loads a job template.
func (w *wtx) template(id string) (*store.JobTemplate, error) {
	var rec []byte
	err := w.queryRow("SELECT record FROM job_templates WHERE template_id = $1", []any{id}, &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.Errorf(store.ErrNotFound, "job template %s does not exist", id)
	}
	if err != nil {
		return nil, err
	}
	return decode[store.JobTemplate](rec, "job template "+id)
}

// CreateJobTemplate stores a job template, from a document or by copying
// a job's document and configuration.
func (s *Store) CreateJobTemplate(ctx context.Context, in *store.CreateJobTemplateInput) (*store.JobTemplate, error) {
	if err := store.ValidateTemplate(in); err != nil {
		return nil, err
	}
	var out *store.JobTemplate
	err := s.update(ctx, "create job template", func(w *wtx) error {
		out = nil
		t := in.Template
		if in.JobID != "" {
			job, err := w.job(in.JobID)
			if err != nil {
				return err
			}
			if t.Document, err = w.document(job.JobID, job.Seq); err != nil {
				return err
			}
			store.FillTemplate(&t, store.TemplateConfig(job))
		}
		t.CreatedAt = w.now
		rec, err := json.Marshal(&t)
		if err != nil {
			return err
		}
		n, err := w.execNow("INSERT INTO job_templates (template_id, record) VALUES ($1, $2) ON CONFLICT DO NOTHING", t.JobTemplateID, rec)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.Errorf(store.ErrAlreadyExists, "job template %s already exists", t.JobTemplateID)
		}
		out = &t
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DescribeJobTemplate returns a job template.
func (s *Store) DescribeJobTemplate(ctx context.Context, id string) (*store.JobTemplate, error) {
	if err := store.ValidateJobID(id); err != nil {
		return nil, err
	}
	var out *store.JobTemplate
	err := s.view(ctx, "describe job template", func(r *wtx) error {
		var err error
		out, err = r.template(id)
		return err
	})
	return out, err
}

// ListJobTemplates lists job templates by id.
func (s *Store) ListJobTemplates(ctx context.Context, in *store.PageInput) (*store.TemplatesPage, error) {
	limit, after, err := page(in)
	if err != nil {
		return nil, err
	}
	out := &store.TemplatesPage{}
	err = s.view(ctx, "list job templates", func(r *wtx) error {
		var err error
		out.Templates, out.NextToken, err = listRecords(r, "SELECT record FROM job_templates WHERE template_id > $1 ORDER BY template_id LIMIT $2",
			after, limit, "job template", func(t *store.JobTemplate) string { return t.JobTemplateID })
		return err
	})
	return out, err
}

// DeleteJobTemplate deletes a job template; jobs made from it keep their
// copy of its document and configuration.
func (s *Store) DeleteJobTemplate(ctx context.Context, id string) error {
	if err := store.ValidateJobID(id); err != nil {
		return err
	}
	return s.update(ctx, "delete job template", func(w *wtx) error {
		n, err := w.execNow("DELETE FROM job_templates WHERE template_id = $1", id)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.Errorf(store.ErrNotFound, "job template %s does not exist", id)
		}
		return nil
	})
}
