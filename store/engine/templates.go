package engine

import (
	"context"

	"github.com/jobsbroker/jobsbroker/store"
)

// template loads a job template, or fails with ErrNotFound.
func (t *txn) template(id string) (*store.JobTemplate, error) {
	tmpl, err := t.r.Template(id)
	if err != nil {
		return nil, err
	}
	if tmpl == nil {
		return nil, store.ErrTemplateNotFound(id)
	}
	return tmpl, nil
}

// CreateJobTemplate stores a job template, from a document or by copying
// a job's document and configuration.
func (e *Engine) CreateJobTemplate(ctx context.Context, in *store.CreateJobTemplateInput) (*store.JobTemplate, error) {
	if err := store.ValidateTemplate(in); err != nil {
		return nil, err
	}
	var out *store.JobTemplate
	err := e.update(ctx, "create job template", func(t *txn) error {
		out = nil
		tmpl := in.Template
		if in.JobID != "" {
			job, err := t.job(in.JobID)
			if err != nil {
				return err
			}
			if tmpl.Document, err = t.document(job.JobID, job.Seq); err != nil {
				return err
			}
			store.FillTemplate(&tmpl, store.TemplateConfig(job))
		}
		tmpl.CreatedAt = t.now
		inserted, err := t.tx.InsertTemplate(&tmpl)
		if err != nil {
			return err
		}
		if !inserted {
			return store.Errorf(store.ErrAlreadyExists, "job template %s already exists", tmpl.JobTemplateID)
		}
		out = &tmpl
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DescribeJobTemplate returns a job template.
func (e *Engine) DescribeJobTemplate(ctx context.Context, id string) (*store.JobTemplate, error) {
	if err := store.ValidateJobID(id); err != nil {
		return nil, err
	}
	var out *store.JobTemplate
	err := e.view(ctx, "describe job template", func(t *txn) error {
		var err error
		out, err = t.template(id)
		return err
	})
	return out, err
}

// ListJobTemplates lists job templates by id.
func (e *Engine) ListJobTemplates(ctx context.Context, in *store.PageInput) (*store.TemplatesPage, error) {
	limit, after, err := page(in)
	if err != nil {
		return nil, err
	}
	out := &store.TemplatesPage{}
	err = e.view(ctx, "list job templates", func(t *txn) error {
		out.Templates, out.NextToken = nil, ""
		return t.r.EachTemplate(after, func(tmpl *store.JobTemplate) (bool, error) {
			if len(out.Templates) == limit {
				out.NextToken = store.NameListToken(out.Templates[limit-1].JobTemplateID)
				return false, nil
			}
			out.Templates = append(out.Templates, tmpl)
			return true, nil
		})
	})
	return out, err
}

// DeleteJobTemplate deletes a job template; jobs made from it keep their
// copy of its document and configuration.
func (e *Engine) DeleteJobTemplate(ctx context.Context, id string) error {
	if err := store.ValidateJobID(id); err != nil {
		return err
	}
	return e.update(ctx, "delete job template", func(t *txn) error {
		deleted, err := t.tx.DeleteTemplate(id)
		if err != nil {
			return err
		}
		if !deleted {
			return store.ErrTemplateNotFound(id)
		}
		return nil
	})
}
