package engine

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/jobsbroker/jobsbroker/store"
)

// group loads a thing group with its ancestors, or fails with
// ErrNotFound.
func (t *txn) group(name string) (*store.ThingGroup, error) { return t.groupLocked(name, NoLock) }

func (t *txn) groupLocked(name string, lock LockMode) (*store.ThingGroup, error) {
	g, err := t.r.Group(name, lock)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, store.ErrGroupNotFound(name)
	}
	return g, nil
}

// thing loads a registered thing, or fails with ErrNotFound.
func (t *txn) thing(name string, lock LockMode) (*store.Thing, error) {
	th, err := t.r.Thing(name, lock)
	if err != nil {
		return nil, err
	}
	if th == nil {
		return nil, store.ErrThingNotFound(name)
	}
	return th, nil
}

// groupThings returns the things of a group and, when recursive, of its
// descendants, each once, sorted.
func (t *txn) groupThings(group string, recursive bool) ([]string, error) {
	groups := []string{group}
	if recursive {
		var err error
		if groups, err = t.r.Subtree(group); err != nil {
			return nil, err
		}
	}
	return t.r.GroupThings(groups)
}

// CreateThing registers a thing. Creating it again with the same
// configuration succeeds; with another, it is ResourceAlreadyExists.
func (e *Engine) CreateThing(ctx context.Context, in *store.CreateThingInput) (*store.Thing, error) {
	if err := store.ValidateCreateThing(in); err != nil {
		return nil, err
	}
	var out *store.Thing
	err := e.update(ctx, "create thing", func(t *txn) error {
		out = nil
		existing, err := t.r.Thing(in.ThingName, NoLock)
		if err != nil {
			return err
		}
		if existing != nil {
			if existing.ThingTypeName == in.ThingTypeName && maps.Equal(existing.Attributes, in.Attributes) {
				out = existing
				return nil
			}
			return store.Errorf(store.ErrAlreadyExists, "thing %s already exists with another configuration", in.ThingName)
		}
		th := &store.Thing{ThingName: in.ThingName, ThingID: store.NewID(), ThingTypeName: in.ThingTypeName,
			Attributes: in.Attributes, Version: 1, CreatedAt: t.now}
		if err := t.tx.InsertThing(th); err != nil {
			return err
		}
		out = th
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DescribeThing returns a registered thing.
func (e *Engine) DescribeThing(ctx context.Context, name string) (*store.Thing, error) {
	if err := store.ValidateThingName(name); err != nil {
		return nil, err
	}
	var out *store.Thing
	err := e.view(ctx, "describe thing", func(t *txn) error {
		var err error
		out, err = t.thing(name, NoLock)
		return err
	})
	return out, err
}

// DeleteThing unregisters a thing: it leaves its groups, and its pending
// executions become REMOVED.
func (e *Engine) DeleteThing(ctx context.Context, in *store.DeleteThingInput) error {
	if err := store.ValidateThingName(in.ThingName); err != nil {
		return err
	}
	return e.update(ctx, "delete thing", func(t *txn) error {
		th, err := t.r.Thing(in.ThingName, LockUpdate)
		if err != nil || th == nil {
			return err // AWS: deleting a thing that does not exist succeeds
		}
		if in.ExpectedVersion != nil && *in.ExpectedVersion != th.Version {
			return store.Errorf(store.ErrVersionConflict, "expectedVersion %d does not match the thing's version %d", *in.ExpectedVersion, th.Version)
		}
		groups, err := t.r.GroupsOf(th.ThingName)
		if err != nil {
			return err
		}
		for _, g := range groups {
			if err := t.leaveGroup(g, th.ThingName); err != nil {
				return err
			}
		}
		if err := t.tx.DeleteThing(th.ThingName); err != nil {
			return err
		}
		return t.removeAllPending(th.ThingName)
	})
}

// removeAllPending moves every pending execution of a deleted thing, in
// each of its queues, to REMOVED.
func (t *txn) removeAllPending(thing string) error {
	th, err := t.open(thing, false)
	if err != nil {
		return err
	}
	namespaces, err := t.r.QueueNamespaces(thing)
	if err != nil {
		return err
	}
	for _, ns := range namespaces {
		var after *store.PendingExecution
		for {
			q, err := t.r.Queue(thing, ns, after, 1)
			if err != nil {
				return err
			}
			if len(q) == 0 {
				break
			}
			if err := t.removeExecution(th, q[0].JobID, q[0].ExecutionNumber); err != nil {
				return err
			}
			after = &q[0] // in case it stayed: the queue is walked once
		}
	}
	return t.close(th)
}

// removeExecution moves one pending execution to REMOVED.
func (t *txn) removeExecution(th *thingTx, jobID string, n int64) error {
	found, err := t.exec(th.name, jobID, n)
	if err != nil {
		return err
	}
	ex, err := t.current(th, found)
	if err != nil || ex == nil || !ex.Status.Pending() {
		return err
	}
	job, err := t.job(jobID)
	if err != nil {
		return err
	}
	removed := store.Remove(ex, t.now)
	if err := t.putExec(th, ex, removed); err != nil {
		return err
	}
	return t.finished(th, job, removed)
}

// ListThings lists registered things by name.
func (e *Engine) ListThings(ctx context.Context, in *store.PageInput) (*store.ThingsPage, error) {
	limit, after, err := page(in)
	if err != nil {
		return nil, err
	}
	out := &store.ThingsPage{}
	err = e.view(ctx, "list things", func(t *txn) error {
		out.Things, out.NextToken = nil, ""
		return t.r.EachThing(after, func(th *store.Thing) (bool, error) {
			if len(out.Things) == limit {
				out.NextToken = store.NameListToken(out.Things[limit-1].ThingName)
				return false, nil
			}
			out.Things = append(out.Things, th)
			return true, nil
		})
	})
	return out, err
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
func (e *Engine) CreateThingGroup(ctx context.Context, in *store.CreateThingGroupInput) (*store.ThingGroup, error) {
	if err := store.ValidateCreateThingGroup(in); err != nil {
		return nil, err
	}
	var out *store.ThingGroup
	err := e.update(ctx, "create thing group", func(t *txn) error {
		out = nil
		existing, err := t.r.Group(in.Name, NoLock)
		if err != nil {
			return err
		}
		if existing != nil {
			if existing.ParentName == in.ParentName && existing.Description == in.Description && maps.Equal(existing.Attributes, in.Attributes) {
				out = existing
				return nil
			}
			return store.Errorf(store.ErrAlreadyExists, "thing group %s already exists with another configuration", in.Name)
		}
		var anc []string
		if in.ParentName != "" {
			parent, err := t.groupLocked(in.ParentName, LockShare)
			if err != nil {
				return err
			}
			anc = append(parent.Ancestors, parent.Name)
			if len(anc) >= store.MaxGroupDepth {
				return store.Errorf(store.ErrInvalidRequest, "thing groups nest at most %d levels deep", store.MaxGroupDepth)
			}
		}
		g := &store.ThingGroup{Name: in.Name, ID: store.NewID(), ParentName: in.ParentName, Description: in.Description,
			Attributes: in.Attributes, Version: 1, CreatedAt: t.now}
		if err := t.tx.InsertGroup(g); err != nil {
			return err
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
func (e *Engine) DescribeThingGroup(ctx context.Context, name string) (*store.ThingGroup, error) {
	if err := store.ValidateThingGroupName(name); err != nil {
		return nil, err
	}
	var out *store.ThingGroup
	err := e.view(ctx, "describe thing group", func(t *txn) error {
		var err error
		out, err = t.group(name)
		return err
	})
	return out, err
}

// DeleteThingGroup deletes a group that has no child groups. Its things
// leave it, with what that means for continuous jobs.
func (e *Engine) DeleteThingGroup(ctx context.Context, in *store.DeleteThingGroupInput) error {
	if err := store.ValidateThingGroupName(in.Name); err != nil {
		return err
	}
	return e.update(ctx, "delete thing group", func(t *txn) error {
		g, err := t.r.Group(in.Name, LockUpdate)
		if err != nil || g == nil {
			return err // AWS: deleting a group that does not exist succeeds
		}
		if in.ExpectedVersion != nil && *in.ExpectedVersion != g.Version {
			return store.Errorf(store.ErrVersionConflict, "expectedVersion %d does not match the group's version %d", *in.ExpectedVersion, g.Version)
		}
		children, err := t.r.Subtree(g.Name)
		if err != nil {
			return err
		}
		if len(children) > 1 {
			return store.Errorf(store.ErrInvalidRequest, "thing group %s has child groups; delete them first", g.Name)
		}
		members, err := t.r.GroupThings([]string{g.Name})
		if err != nil {
			return err
		}
		for _, th := range members {
			if err := t.leaveGroup(g.Name, th); err != nil {
				return err
			}
		}
		return t.tx.DeleteGroup(g)
	})
}

// ListThingGroups lists groups by name.
func (e *Engine) ListThingGroups(ctx context.Context, in *store.ListThingGroupsInput) (*store.GroupsPage, error) {
	var out *store.GroupsPage
	err := e.view(ctx, "list thing groups", func(t *txn) error {
		var names []string
		var err error
		switch {
		case in.ParentGroup == "":
			names, err = t.r.GroupNames("")
		case in.Recursive:
			if _, err := t.group(in.ParentGroup); err != nil {
				return err
			}
			if names, err = t.r.Subtree(in.ParentGroup); err == nil {
				names = names[1:]
			}
		default:
			if _, err := t.group(in.ParentGroup); err != nil {
				return err
			}
			names, err = t.r.GroupNames(in.ParentGroup)
		}
		if err != nil {
			return err
		}
		if in.NamePrefixFilter != "" {
			names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, in.NamePrefixFilter) })
		}
		slices.Sort(names)
		out, err = t.groupsPage(names, &in.PageInput)
		return err
	})
	return out, err
}

func (t *txn) groupsPage(names []string, in *store.PageInput) (*store.GroupsPage, error) {
	p, err := pageNames(names, in)
	if err != nil {
		return nil, err
	}
	out := &store.GroupsPage{NextToken: p.NextToken}
	for _, n := range p.Names {
		g, err := t.group(n)
		if err != nil {
			return nil, err
		}
		out.Groups = append(out.Groups, g)
	}
	return out, nil
}

// AddThingToThingGroup adds a registered thing to a group. Continuous jobs
// that target the group, or a group above it, give the thing an execution.
func (e *Engine) AddThingToThingGroup(ctx context.Context, in *store.MembershipInput) error {
	if err := store.ValidateMembership(in); err != nil {
		return err
	}
	return e.update(ctx, "add thing to group", func(t *txn) error {
		if _, err := t.thing(in.ThingName, LockUpdate); err != nil {
			return err
		}
		g, err := t.groupLocked(in.ThingGroupName, LockShare)
		if err != nil {
			return err
		}
		groups, err := t.r.GroupsOf(in.ThingName)
		if err != nil {
			return err
		}
		if slices.Contains(groups, g.Name) {
			return nil
		}
		if len(groups) >= store.MaxGroupsPerThing {
			return store.Errorf(store.ErrInvalidRequest, "thing %s already belongs to %d groups, the most it may", in.ThingName, store.MaxGroupsPerThing)
		}
		if _, err := t.tx.AddMember(g.Name, in.ThingName); err != nil {
			return err
		}
		return t.reconcileGroups(append(g.Ancestors, g.Name), in.ThingName)
	})
}

// RemoveThingFromThingGroup takes a thing out of a group. Continuous jobs
// that no longer cover it set its pending execution REMOVED.
func (e *Engine) RemoveThingFromThingGroup(ctx context.Context, in *store.MembershipInput) error {
	if err := store.ValidateMembership(in); err != nil {
		return err
	}
	return e.update(ctx, "remove thing from group", func(t *txn) error {
		if _, err := t.group(in.ThingGroupName); err != nil {
			return err
		}
		if _, err := t.r.Thing(in.ThingName, LockUpdate); err != nil {
			return err
		}
		return t.leaveGroup(in.ThingGroupName, in.ThingName)
	})
}

// leaveGroup removes a membership and reconciles the continuous jobs that
// targeted the group or its ancestors.
func (t *txn) leaveGroup(group, thing string) error {
	removed, err := t.tx.RemoveMember(group, thing)
	if err != nil || !removed {
		return err
	}
	g, err := t.group(group)
	if err != nil {
		return err
	}
	return t.reconcileGroups(append(g.Ancestors, g.Name), thing)
}

// reconcileGroups brings the thing's executions of every continuous job
// that targets one of groups in line with whether the job still covers
// the thing.
func (t *txn) reconcileGroups(groups []string, thing string) error {
	ids, err := t.r.GroupJobs(groups)
	if err != nil {
		return err
	}
	for _, id := range ids {
		job, err := t.r.JobHead(id)
		if err != nil {
			return err
		}
		if job == nil || job.TargetSelection != store.Continuous || job.Status != store.JobInProgress {
			continue
		}
		if job, err = t.job(id); err != nil {
			return err
		}
		if err := t.reconcile(job, thing); err != nil {
			return err
		}
	}
	return nil
}

// reconcile gives the thing an execution of a continuous job that covers
// it and has none pending (a join, or a re-join, which starts its retries
// afresh), or removes the pending execution of one that no longer covers
// it.
func (t *txn) reconcile(job *store.Job, thing string) error {
	covered, err := t.covers(job, thing)
	if err != nil {
		return err
	}
	th, err := t.open(thing, covered)
	if err != nil {
		return err
	}
	latest, err := t.r.LatestExecution(thing, job.JobID)
	if err != nil {
		return err
	}
	pending := latest != nil && latest.Status.Pending()
	switch {
	case covered && !pending:
		err = t.queueInto(th, job, true)
	case !covered && pending:
		err = t.removeExecution(th, job.JobID, latest.ExecutionNumber)
	}
	if err != nil {
		return err
	}
	return t.close(th)
}

// ListThingsInThingGroup lists a group's things (and its children's with
// Recursive), by name.
func (e *Engine) ListThingsInThingGroup(ctx context.Context, in *store.ListThingsInGroupInput) (*store.NamesPage, error) {
	if err := store.ValidateThingGroupName(in.ThingGroupName); err != nil {
		return nil, err
	}
	var names []string
	err := e.view(ctx, "list things in group", func(t *txn) error {
		if _, err := t.group(in.ThingGroupName); err != nil {
			return err
		}
		var err error
		names, err = t.groupThings(in.ThingGroupName, in.Recursive)
		return err
	})
	if err != nil {
		return nil, err
	}
	return pageNames(names, &in.PageInput)
}

// ListThingGroupsForThing lists the groups a thing belongs to directly.
func (e *Engine) ListThingGroupsForThing(ctx context.Context, thing string, in *store.PageInput) (*store.GroupsPage, error) {
	if err := store.ValidateThingName(thing); err != nil {
		return nil, err
	}
	var out *store.GroupsPage
	err := e.view(ctx, "list groups of thing", func(t *txn) error {
		if _, err := t.thing(thing, NoLock); err != nil {
			return err
		}
		names, err := t.r.GroupsOf(thing)
		if err != nil {
			return err
		}
		out, err = t.groupsPage(names, in)
		return err
	})
	return out, err
}
