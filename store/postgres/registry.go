package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store"
)

// registeredThing loads a registered thing; lock takes its row lock.
func (w *wtx) registeredThing(name string, lock bool) (*store.Thing, error) {
	q := "SELECT record FROM things WHERE thing_name = $1"
	if lock {
		q += " FOR UPDATE"
	}
	var rec []byte
	err := w.queryRow(q, []any{name}, &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.Errorf(store.ErrNotFound, "thing %s does not exist", name)
	}
	if err != nil {
		return nil, err
	}
	return decode[store.Thing](rec, "thing "+name)
}

// upQuery lists a start group's ancestors and itself, with their parents.
const ancestorsQuery = `WITH RECURSIVE up(name, parent, depth) AS (
		SELECT group_name, parent_name, 0 FROM thing_groups WHERE group_name = $1
		UNION ALL
		SELECT g.group_name, g.parent_name, up.depth + 1 FROM thing_groups g JOIN up ON g.group_name = up.parent
		WHERE up.depth < 16)
	SELECT name FROM up WHERE depth > 0 ORDER BY depth DESC`

// group loads a thing group with its ancestors; lock takes its row lock
// (shared: the group may not go away).
func (w *wtx) group(name string) (*store.ThingGroup, error) {
	return w.groupLocked(name, "")
}

func (w *wtx) groupLocked(name, lock string) (*store.ThingGroup, error) {
	q := "SELECT record FROM thing_groups WHERE group_name = $1"
	if lock != "" {
		q += " " + lock
	}
	var rec []byte
	err := w.queryRow(q, []any{name}, &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.Errorf(store.ErrNotFound, "thing group %s does not exist", name)
	}
	if err != nil {
		return nil, err
	}
	g, err := decode[store.ThingGroup](rec, "thing group "+name)
	if err != nil {
		return nil, err
	}
	rows, err := w.query(ancestorsQuery, name)
	if err != nil {
		return nil, err
	}
	if g.Ancestors, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, err
	}
	return g, nil
}

// groupsOf returns the groups a thing belongs to directly, by name.
func (w *wtx) groupsOf(thing string) ([]string, error) {
	rows, err := w.query("SELECT group_name FROM group_members WHERE thing_name = $1 ORDER BY group_name", thing)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// enclosingGroups returns every group that contains the thing: its direct
// groups and all their ancestors.
func (w *wtx) enclosingGroups(thing string) (map[string]bool, error) {
	rows, err := w.query(`WITH RECURSIVE up(name, depth) AS (
			SELECT group_name, 0 FROM group_members WHERE thing_name = $1
			UNION
			SELECT g.parent_name, up.depth + 1 FROM thing_groups g JOIN up ON g.group_name = up.name
			WHERE g.parent_name IS NOT NULL AND up.depth < 16)
		SELECT DISTINCT name FROM up`, thing)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	all := map[string]bool{}
	for _, n := range names {
		all[n] = true
	}
	return all, nil
}

// subtree returns group and all its descendants, the group first.
func (w *wtx) subtree(group string) ([]string, error) {
	rows, err := w.query(`WITH RECURSIVE down(name, depth) AS (
			SELECT $1::text COLLATE "C", 0
			UNION
			SELECT g.group_name, down.depth + 1 FROM thing_groups g JOIN down ON g.parent_name = down.name
			WHERE down.depth < 16)
		SELECT name FROM down ORDER BY depth, name`, group)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// groupThings returns the things of a group and, when recursive, of its
// descendants, each once, sorted.
func (w *wtx) groupThings(group string, recursive bool) ([]string, error) {
	groups := []string{group}
	if recursive {
		var err error
		if groups, err = w.subtree(group); err != nil {
			return nil, err
		}
	}
	rows, err := w.query("SELECT DISTINCT thing_name FROM group_members WHERE group_name = ANY($1) ORDER BY thing_name", groups)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// CreateThing registers a thing. Creating it again with the same
// configuration succeeds; with another, it is ResourceAlreadyExists.
func (s *Store) CreateThing(ctx context.Context, in *store.CreateThingInput) (*store.Thing, error) {
	if err := store.ValidateCreateThing(in); err != nil {
		return nil, err
	}
	var out *store.Thing
	err := s.update(ctx, "create thing", func(w *wtx) error {
		out = &store.Thing{ThingName: in.ThingName, ThingID: store.NewID(), ThingTypeName: in.ThingTypeName,
			Attributes: in.Attributes, Version: 1, CreatedAt: w.now}
		rec, err := json.Marshal(out)
		if err != nil {
			return err
		}
		n, err := w.execNow("INSERT INTO things (thing_name, record) VALUES ($1, $2) ON CONFLICT DO NOTHING", in.ThingName, rec)
		if err != nil || n == 1 {
			return err
		}
		existing, err := w.registeredThing(in.ThingName, false)
		if err != nil {
			return err
		}
		if existing.ThingTypeName == in.ThingTypeName && maps.Equal(existing.Attributes, in.Attributes) {
			out = existing
			return nil
		}
		out = nil
		return store.Errorf(store.ErrAlreadyExists, "thing %s already exists with another configuration", in.ThingName)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DescribeThing returns a registered thing.
func (s *Store) DescribeThing(ctx context.Context, name string) (*store.Thing, error) {
	if err := store.ValidateThingName(name); err != nil {
		return nil, err
	}
	var out *store.Thing
	err := s.view(ctx, "describe thing", func(r *wtx) error {
		var err error
		out, err = r.registeredThing(name, false)
		return err
	})
	return out, err
}

// DeleteThing unregisters a thing: it leaves its groups, and its pending
// executions become REMOVED.
func (s *Store) DeleteThing(ctx context.Context, in *store.DeleteThingInput) error {
	if err := store.ValidateThingName(in.ThingName); err != nil {
		return err
	}
	return s.update(ctx, "delete thing", func(w *wtx) error {
		th, err := w.registeredThing(in.ThingName, true)
		if errors.Is(err, store.ErrNotFound) {
			return nil // AWS: deleting a thing that does not exist succeeds
		}
		if err != nil {
			return err
		}
		if in.ExpectedVersion != nil && *in.ExpectedVersion != th.Version {
			return store.Errorf(store.ErrVersionConflict, "expectedVersion %d does not match the thing's version %d", *in.ExpectedVersion, th.Version)
		}
		groups, err := w.groupsOf(th.ThingName)
		if err != nil {
			return err
		}
		for _, g := range groups {
			if err := w.leaveGroup(g, th.ThingName); err != nil {
				return err
			}
		}
		w.queue("DELETE FROM things WHERE thing_name = $1", th.ThingName)
		return w.removeAllPending(th.ThingName)
	})
}

// removeAllPending moves every pending execution of a deleted thing to
// REMOVED.
func (w *wtx) removeAllPending(thing string) error {
	t, err := w.openThing(thing, false)
	if err != nil {
		return err
	}
	for _, p := range slices.Clone(t.set) {
		if err := w.removeExecution(t, p.JobID, p.ExecutionNumber); err != nil {
			return err
		}
	}
	return w.closeThing(t)
}

// removeExecution moves one pending execution to REMOVED.
func (w *wtx) removeExecution(t *thingTx, jobID string, n int64) error {
	e, err := w.exec(t.name, jobID, n)
	if err != nil {
		return err
	}
	if !e.Status.Pending() {
		return nil
	}
	job, err := w.job(jobID)
	if err != nil {
		return err
	}
	removed := store.Remove(e, w.now)
	if err := w.putExec(t, e, removed); err != nil {
		return err
	}
	return w.finished(t, job, removed)
}

// ListThings lists registered things by name.
func (s *Store) ListThings(ctx context.Context, in *store.PageInput) (*store.ThingsPage, error) {
	limit, after, err := page(in)
	if err != nil {
		return nil, err
	}
	out := &store.ThingsPage{}
	err = s.view(ctx, "list things", func(r *wtx) error {
		var err error
		out.Things, out.NextToken, err = listRecords(r, "SELECT record FROM things WHERE thing_name > $1 ORDER BY thing_name LIMIT $2",
			after, limit, "thing", func(th *store.Thing) string { return th.ThingName })
		return err
	})
	return out, err
}

// listRecords runs a name-ordered page query (its parameters: the name
// to list after, and how many rows) and decodes up to limit records of
// it; the token is set when there are more, name giving each record's
// name.
func listRecords[T any](r *wtx, sql, after string, limit int, what string, name func(*T) string) ([]*T, string, error) {
	rows, err := r.query(sql, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	recs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, "", err
	}
	var out []*T
	for _, rec := range recs {
		if len(out) == limit {
			return out, store.NameListToken(name(out[limit-1])), nil
		}
		v, err := decode[T](rec, what)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, "", nil
}

// page reads a name-ordered page request: the limit and the name after
// which to start.
func page(in *store.PageInput) (int, string, error) {
	limit, err := store.PageSize(in.MaxResults)
	if err != nil {
		return 0, "", err
	}
	if in.NextToken == "" {
		return limit, "", nil
	}
	after, err := store.DecodeListToken(in.NextToken)
	if err != nil {
		return 0, "", err
	}
	return limit, string(after), nil
}

// pageNames slices a sorted name list by a page request.
func pageNames(names []string, in *store.PageInput) (*store.NamesPage, error) {
	limit, after, err := page(in)
	if err != nil {
		return nil, err
	}
	if in.NextToken != "" {
		i, found := slices.BinarySearch(names, after)
		if found {
			i++
		}
		names = names[i:]
	}
	out := &store.NamesPage{Names: names}
	if len(names) > limit {
		out.Names = names[:limit]
		out.NextToken = store.NameListToken(names[limit-1])
	}
	return out, nil
}

// CreateThingGroup creates a static thing group, under ParentName when set.
func (s *Store) CreateThingGroup(ctx context.Context, in *store.CreateThingGroupInput) (*store.ThingGroup, error) {
	if err := store.ValidateThingGroupName(in.Name); err != nil {
		return nil, err
	}
	if in.ParentName != "" {
		if err := store.ValidateThingGroupName(in.ParentName); err != nil {
			return nil, err
		}
	}
	if err := store.ValidateAttributes(in.Attributes, 50); err != nil {
		return nil, err
	}
	if err := store.ValidateDescription(in.Description); err != nil {
		return nil, err
	}
	var out *store.ThingGroup
	err := s.update(ctx, "create thing group", func(w *wtx) error {
		out = nil
		existing, err := w.group(in.Name)
		if err == nil {
			if existing.ParentName == in.ParentName && existing.Description == in.Description && maps.Equal(existing.Attributes, in.Attributes) {
				out = existing
				return nil
			}
			return store.Errorf(store.ErrAlreadyExists, "thing group %s already exists with another configuration", in.Name)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var anc []string
		var parent *string
		if in.ParentName != "" {
			p, err := w.groupLocked(in.ParentName, "FOR SHARE")
			if err != nil {
				return err
			}
			anc = append(p.Ancestors, p.Name)
			if len(anc) >= store.MaxGroupDepth {
				return store.Errorf(store.ErrInvalidRequest, "thing groups nest at most %d levels deep", store.MaxGroupDepth)
			}
			parent = &in.ParentName
		}
		g := &store.ThingGroup{Name: in.Name, ID: store.NewID(), ParentName: in.ParentName, Description: in.Description,
			Attributes: in.Attributes, Version: 1, CreatedAt: w.now}
		rec, err := json.Marshal(g)
		if err != nil {
			return err
		}
		n, err := w.execNow("INSERT INTO thing_groups (group_name, parent_name, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			in.Name, parent, rec)
		if err != nil {
			return err
		}
		if n == 0 {
			return errConflict // created meanwhile; look again
		}
		g.Ancestors = anc
		out = g
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DescribeThingGroup returns a thing group with its ancestors.
func (s *Store) DescribeThingGroup(ctx context.Context, name string) (*store.ThingGroup, error) {
	if err := store.ValidateThingGroupName(name); err != nil {
		return nil, err
	}
	var out *store.ThingGroup
	err := s.view(ctx, "describe thing group", func(r *wtx) error {
		var err error
		out, err = r.group(name)
		return err
	})
	return out, err
}

// DeleteThingGroup deletes a group that has no child groups. Its things
// leave it, with what that means for continuous jobs.
func (s *Store) DeleteThingGroup(ctx context.Context, in *store.DeleteThingGroupInput) error {
	if err := store.ValidateThingGroupName(in.Name); err != nil {
		return err
	}
	return s.update(ctx, "delete thing group", func(w *wtx) error {
		g, err := w.groupLocked(in.Name, "FOR UPDATE")
		if errors.Is(err, store.ErrNotFound) {
			return nil // AWS: deleting a group that does not exist succeeds
		}
		if err != nil {
			return err
		}
		if in.ExpectedVersion != nil && *in.ExpectedVersion != g.Version {
			return store.Errorf(store.ErrVersionConflict, "expectedVersion %d does not match the group's version %d", *in.ExpectedVersion, g.Version)
		}
		children, err := w.subtree(g.Name)
		if err != nil {
			return err
		}
		if len(children) > 1 {
			return store.Errorf(store.ErrInvalidRequest, "thing group %s has child groups; delete them first", g.Name)
		}
		members, err := w.groupThings(g.Name, false)
		if err != nil {
			return err
		}
		for _, th := range members {
			if err := w.leaveGroup(g.Name, th); err != nil {
				return err
			}
		}
		w.queue("DELETE FROM group_jobs WHERE group_name = $1", g.Name)
		w.queue("DELETE FROM thing_groups WHERE group_name = $1", g.Name)
		return nil
	})
}

// ListThingGroups lists groups by name.
func (s *Store) ListThingGroups(ctx context.Context, in *store.ListThingGroupsInput) (*store.GroupsPage, error) {
	var out *store.GroupsPage
	err := s.view(ctx, "list thing groups", func(r *wtx) error {
		var names []string
		if in.ParentGroup != "" {
			if _, err := r.group(in.ParentGroup); err != nil {
				return err
			}
			if in.Recursive {
				sub, err := r.subtree(in.ParentGroup)
				if err != nil {
					return err
				}
				names = sub[1:]
			} else {
				rows, err := r.query("SELECT group_name FROM thing_groups WHERE parent_name = $1", in.ParentGroup)
				if err != nil {
					return err
				}
				if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
					return err
				}
			}
		} else {
			rows, err := r.query("SELECT group_name FROM thing_groups")
			if err != nil {
				return err
			}
			if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return err
			}
		}
		if in.NamePrefixFilter != "" {
			names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, in.NamePrefixFilter) })
		}
		slices.Sort(names)
		var err error
		out, err = r.groupsPage(names, &in.PageInput)
		return err
	})
	return out, err
}

func (r *wtx) groupsPage(names []string, in *store.PageInput) (*store.GroupsPage, error) {
	p, err := pageNames(names, in)
	if err != nil {
		return nil, err
	}
	out := &store.GroupsPage{NextToken: p.NextToken}
	for _, n := range p.Names {
		g, err := r.group(n)
		if err != nil {
			return nil, err
		}
		out.Groups = append(out.Groups, g)
	}
	return out, nil
}

// AddThingToThingGroup adds a registered thing to a group. Continuous jobs
// that target the group, or a group above it, give the thing an execution.
func (s *Store) AddThingToThingGroup(ctx context.Context, in *store.MembershipInput) error {
	if err := store.ValidateMembership(in); err != nil {
		return err
	}
	return s.update(ctx, "add thing to group", func(w *wtx) error {
		if _, err := w.registeredThing(in.ThingName, true); err != nil {
			return err
		}
		g, err := w.groupLocked(in.ThingGroupName, "FOR SHARE")
		if err != nil {
			return err
		}
		groups, err := w.groupsOf(in.ThingName)
		if err != nil {
			return err
		}
		if slices.Contains(groups, g.Name) {
			return nil
		}
		if len(groups) >= store.MaxGroupsPerThing {
			return store.Errorf(store.ErrInvalidRequest, "thing %s already belongs to %d groups, the most it may", in.ThingName, store.MaxGroupsPerThing)
		}
		w.queue("INSERT INTO group_members (group_name, thing_name) VALUES ($1, $2)", g.Name, in.ThingName)
		return w.reconcileGroups(append(g.Ancestors, g.Name), in.ThingName)
	})
}

// RemoveThingFromThingGroup takes a thing out of a group. Continuous jobs
// that no longer cover it set its pending execution REMOVED.
func (s *Store) RemoveThingFromThingGroup(ctx context.Context, in *store.MembershipInput) error {
	if err := store.ValidateMembership(in); err != nil {
		return err
	}
	return s.update(ctx, "remove thing from group", func(w *wtx) error {
		if _, err := w.group(in.ThingGroupName); err != nil {
			return err
		}
		if _, err := w.registeredThing(in.ThingName, true); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return w.leaveGroup(in.ThingGroupName, in.ThingName)
	})
}

// leaveGroup removes a membership and reconciles the continuous jobs that
// targeted the group or its ancestors.
func (w *wtx) leaveGroup(group, thing string) error {
	n, err := w.execNow("DELETE FROM group_members WHERE group_name = $1 AND thing_name = $2", group, thing)
	if err != nil || n == 0 {
		return err
	}
	g, err := w.group(group)
	if err != nil {
		return err
	}
	return w.reconcileGroups(append(g.Ancestors, g.Name), thing)
}

// reconcileGroups brings the thing's executions of every continuous job
// that targets one of groups in line with whether the job still covers
// the thing.
func (w *wtx) reconcileGroups(groups []string, thing string) error {
	rows, err := w.query("SELECT DISTINCT job_id FROM group_jobs WHERE group_name = ANY($1) ORDER BY job_id", groups)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, id := range ids {
		job, err := w.job(id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if job.TargetSelection != store.Continuous || job.Status != store.JobInProgress {
			continue
		}
		if err := w.reconcile(job, thing); err != nil {
			return err
		}
	}
	return nil
}

// reconcile gives the thing an execution of a continuous job that covers
// it and has none pending (a join, or a re-join, which starts its retries
// afresh), or removes the pending execution of one that no longer covers
// it.
func (w *wtx) reconcile(job *store.Job, thing string) error {
	covered, err := w.covers(job, thing)
	if err != nil {
		return err
	}
	t, err := w.openThing(thing, covered)
	if err != nil {
		return err
	}
	pending := -1
	for i, p := range t.set {
		if p.JobID == job.JobID {
			pending = i
		}
	}
	switch {
	case covered && pending < 0:
		if err := w.queueInto(t, job, true); err != nil {
			return err
		}
	case !covered && pending >= 0:
		if err := w.removeExecution(t, job.JobID, t.set[pending].ExecutionNumber); err != nil {
			return err
		}
	}
	return w.closeThing(t)
}

// covers reports whether a job targets the thing, directly or through a
// group that contains it (at any depth).
func (w *wtx) covers(job *store.Job, thing string) (bool, error) {
	targets, err := w.jobTargets(job.JobID)
	if err != nil {
		return false, err
	}
	var enclosing map[string]bool
	for _, arn := range targets {
		kind, name, err := store.ParseTargetARN(arn)
		if err != nil {
			continue
		}
		if kind == store.TargetThing {
			if name == thing {
				return true, nil
			}
			continue
		}
		if enclosing == nil {
			if enclosing, err = w.enclosingGroups(thing); err != nil {
				return false, err
			}
		}
		if enclosing[name] {
			return true, nil
		}
	}
	return false, nil
}

// ListThingsInThingGroup lists a group's things (and its children's with
// Recursive), by name.
func (s *Store) ListThingsInThingGroup(ctx context.Context, in *store.ListThingsInGroupInput) (*store.NamesPage, error) {
	if err := store.ValidateThingGroupName(in.ThingGroupName); err != nil {
		return nil, err
	}
	var names []string
	err := s.view(ctx, "list things in group", func(r *wtx) error {
		if _, err := r.group(in.ThingGroupName); err != nil {
			return err
		}
		var err error
		names, err = r.groupThings(in.ThingGroupName, in.Recursive)
		return err
	})
	if err != nil {
		return nil, err
	}
	return pageNames(names, &in.PageInput)
}

// ListThingGroupsForThing lists the groups a thing belongs to directly.
func (s *Store) ListThingGroupsForThing(ctx context.Context, thing string, in *store.PageInput) (*store.GroupsPage, error) {
	if err := store.ValidateThingName(thing); err != nil {
		return nil, err
	}
	var out *store.GroupsPage
	err := s.view(ctx, "list groups of thing", func(r *wtx) error {
		if _, err := r.registeredThing(thing, false); err != nil {
			return err
		}
		names, err := r.groupsOf(thing)
		if err != nil {
			return err
		}
		out, err = r.groupsPage(names, in)
		return err
	})
	return out, err
}
