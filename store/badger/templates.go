package badger

import (
	"context"
	"errors"
	"slices"

	"github.com/jobsbroker/jobsbroker/store"
)

// template loads a job template.
func (r *rtx) template(id string) (*store.JobTemplate, error) {
	var t store.JobTemplate
	if err := r.getJSON(templateKey(id), &t); err != nil {
		if errors.Is(err, errMissing) {
			return nil, store.Errorf(store.ErrNotFound, "job template %s does not exist", id)
		}
		return nil, err
	}
	return &t, nil
}

// CreateJobTemplate stores a job template, from a document or by copying
// a job's document and configuration.
func (s *Store) CreateJobTemplate(ctx context.Context, in *store.CreateJobTemplateInput) (*store.JobTemplate, error) {
	if err := store.ValidateTemplate(in); err != nil {
		return nil, err
	}
	var out *store.JobTemplate
	err := s.submit(ctx, func(w *wtx) error {
		exists, err := w.has(templateKey(in.Template.JobTemplateID))
		if err != nil {
			return err
		}
		if exists {
			return store.Errorf(store.ErrAlreadyExists, "job template %s already exists", in.Template.JobTemplateID)
		}
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
		out = &t
		return w.setJSON(templateKey(t.JobTemplateID), &t)
	})
	return out, err
}

// DescribeJobTemplate returns a job template.
func (s *Store) DescribeJobTemplate(ctx context.Context, id string) (*store.JobTemplate, error) {
	if err := store.ValidateJobID(id); err != nil {
		return nil, err
	}
	var out *store.JobTemplate
	err := s.view(ctx, func(r *rtx) error {
		var err error
		out, err = r.template(id)
		return err
	})
	return out, err
}

// ListJobTemplates lists job templates by id.
func (s *Store) ListJobTemplates(ctx context.Context, in *store.PageInput) (*store.TemplatesPage, error) {
	limit, start, err := page(in, []byte{prefixTemplate})
	if err != nil {
		return nil, err
	}
	out := &store.TemplatesPage{}
	err = s.view(ctx, func(r *rtx) error {
		return r.each([]byte{prefixTemplate}, start, false, func(k, v []byte) (bool, error) {
			if len(out.Templates) == limit {
				out.NextToken = store.NameListToken(out.Templates[limit-1].JobTemplateID)
				return false, nil
			}
			t, err := r.template(string(k[1:]))
			if err != nil {
				return false, err
			}
			out.Templates = append(out.Templates, t)
			return true, nil
		})
	})
	return out, err
}

// DeleteJobTemplate deletes a job template; jobs made from it keep their
// copy of its document and configuration.
func (s *Store) DeleteJobTemplate(ctx context.Context, id string) error {
	if err := store.ValidateJobID(id); err != nil {
		return err
	}
	return s.submit(ctx, func(w *wtx) error {
		if _, err := w.template(id); err != nil {
			return err
		}
		return w.del(templateKey(id))
	})
}

// UpdateJob changes a job's description and configuration. A new rollout
// configuration paces the rest of the rollout; a new timeout applies to
// executions that start from now on.
func (s *Store) UpdateJob(ctx context.Context, in *store.UpdateJobInput) error {
	if err := store.ValidateUpdateJob(in); err != nil {
		return err
	}
	return s.submit(ctx, func(w *wtx) error {
		job, err := w.job(in.JobID)
		if err != nil {
			return err
		}
		if err := store.ApplyJobUpdate(job, in, w.now); err != nil {
			return err
		}
		w.tasksChanged = true // the rollout's pace may have changed
		if err := w.saveJob(job); err != nil {
			return err
		}
		// New abort criteria may already be met.
		return w.checkAbort(job)
	})
}

// AssociateTargetsWithJob adds targets to a continuous job that is in
// progress; the things they cover get executions at once.
func (s *Store) AssociateTargetsWithJob(ctx context.Context, in *store.AssociateTargetsInput) (*store.Job, error) {
	if err := store.ValidateJobID(in.JobID); err != nil {
		return nil, err
	}
	if len(in.Targets) == 0 {
		return nil, store.Errorf(store.ErrInvalidRequest, "targets must list at least one thing or thing group ARN")
	}
	for _, t := range in.Targets {
		if _, _, err := store.ParseTargetARN(t); err != nil {
			return nil, err
		}
	}
	if in.Comment != nil {
		if err := store.ValidateComment(*in.Comment); err != nil {
			return nil, err
		}
	}
	err := s.submit(ctx, func(w *wtx) error {
		job, err := w.job(in.JobID)
		if err != nil {
			return err
		}
		if job.TargetSelection != store.Continuous || job.Status != store.JobInProgress {
			return store.Errorf(store.ErrInvalidRequest, "targets can only be added to a CONTINUOUS job that is IN_PROGRESS; %s is a %s job in %s", job.JobID, job.TargetSelection, job.Status)
		}
		var targets []string
		if err := w.getJSON(jobTargetsKey(job.JobID), &targets); err != nil && !errors.Is(err, errMissing) {
			return err
		}
		var added []string
		for _, t := range in.Targets {
			if !slices.Contains(targets, t) && !slices.Contains(added, t) {
				added = append(added, t)
			}
		}
		if len(targets)+len(added) > store.MaxJobTargets {
			return store.Errorf(store.ErrLimitExceeded, "a job may have at most %d targets", store.MaxJobTargets)
		}
		groups, err := store.TargetGroups(added, w.group)
		if err != nil {
			return err
		}
		job.Targets = append(targets, added...)
		if in.Comment != nil {
			job.Comment = *in.Comment
		}
		job.LastUpdatedAt = w.now
		if err := w.saveJob(job); err != nil {
			return err
		}
		if err := w.saveTargetARNs(job); err != nil {
			return err
		}
		for _, g := range groups {
			if err := w.set(groupJobKey(g, job.JobID), nil); err != nil {
				return err
			}
		}
		things, err := w.resolveTargets(added)
		if err != nil {
			return err
		}
		for _, th := range things {
			if err := w.queueExecution(job, th, true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.DescribeJob(ctx, in.JobID)
}
