package badger

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/jobsbroker/jobsbroker/store"
)

// registeredThing loads a registered thing.
func (r *rtx) registeredThing(name string) (*store.Thing, error) {
	var th store.Thing
	if err := r.getJSON(thingRegKey(name), &th); err != nil {
		if errors.Is(err, errMissing) {
			return nil, store.Errorf(store.ErrNotFound, "thing %s does not exist", name)
		}
		return nil, err
	}
	return &th, nil
}

// group loads a thing group with its ancestors.
func (r *rtx) group(name string) (*store.ThingGroup, error) {
	var g store.ThingGroup
	if err := r.getJSON(groupKey(name), &g); err != nil {
		if errors.Is(err, errMissing) {
			return nil, store.Errorf(store.ErrNotFound, "thing group %s does not exist", name)
		}
		return nil, err
	}
	anc, err := r.ancestors(g.ParentName)
	if err != nil {
		return nil, err
	}
	g.Ancestors = anc
	return &g, nil
}

// ancestors returns parent and its ancestors, root first.
func (r *rtx) ancestors(parent string) ([]string, error) {
	var chain []string
	for parent != "" && len(chain) <= store.MaxGroupDepth {
		chain = append(chain, parent)
		var g store.ThingGroup
		if err := r.getJSON(groupKey(parent), &g); err != nil {
			if errors.Is(err, errMissing) {
				break
			}
			return nil, err
		}
		parent = g.ParentName
	}
	slices.Reverse(chain)
	return chain, nil
}

// groupsOf returns the groups a thing belongs to directly.
func (r *rtx) groupsOf(thing string) ([]string, error) {
	var groups []string
	err := r.eachKey(thingOfPrefix(thing), nil, false, func(k []byte) (bool, error) {
		groups = append(groups, lastPart(k))
		return true, nil
	})
	return groups, err
}

// enclosingGroups returns every group that contains the thing: its direct
// groups and all their ancestors.
func (r *rtx) enclosingGroups(thing string) (map[string]bool, error) {
	direct, err := r.groupsOf(thing)
	if err != nil {
		return nil, err
	}
	all := map[string]bool{}
	for _, g := range direct {
		all[g] = true
		var rec store.ThingGroup
		if err := r.getJSON(groupKey(g), &rec); err != nil {
			if errors.Is(err, errMissing) {
				continue
			}
			return nil, err
		}
		anc, err := r.ancestors(rec.ParentName)
		if err != nil {
			return nil, err
		}
		for _, a := range anc {
			all[a] = true
		}
	}
	return all, nil
}

// subtree returns group and all its descendants.
func (r *rtx) subtree(group string) ([]string, error) {
	out := []string{group}
	for i := 0; i < len(out); i++ {
		err := r.eachKey(childPrefix(out[i]), nil, false, func(k []byte) (bool, error) {
			out = append(out, lastPart(k))
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// groupThings returns the things of a group and, when recursive, of its
// descendants, each once, sorted.
func (r *rtx) groupThings(group string, recursive bool) ([]string, error) {
	groups := []string{group}
	if recursive {
		var err error
		if groups, err = r.subtree(group); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	for _, g := range groups {
		err := r.eachKey(memberPrefix(g), nil, false, func(k []byte) (bool, error) {
			seen[lastPart(k)] = true
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// CreateThing registers a thing. Creating it again with the same
// configuration succeeds; with another, it is ResourceAlreadyExists.
func (s *Store) CreateThing(ctx context.Context, in *store.CreateThingInput) (*store.Thing, error) {
	if err := store.ValidateCreateThing(in); err != nil {
		return nil, err
	}
	var out *store.Thing
	err := s.submit(ctx, func(w *wtx) error {
		existing, err := w.registeredThing(in.ThingName)
		if err == nil {
			if existing.ThingTypeName == in.ThingTypeName && maps.Equal(existing.Attributes, in.Attributes) {
				out = existing
				return nil
			}
			return store.Errorf(store.ErrAlreadyExists, "thing %s already exists with another configuration", in.ThingName)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		out = &store.Thing{ThingName: in.ThingName, ThingID: store.NewID(), ThingTypeName: in.ThingTypeName,
			Attributes: in.Attributes, Version: 1, CreatedAt: w.now}
		return w.setJSON(thingRegKey(in.ThingName), out)
	})
	return out, err
}

// DescribeThing returns a registered thing.
func (s *Store) DescribeThing(ctx context.Context, name string) (*store.Thing, error) {
	if err := store.ValidateThingName(name); err != nil {
		return nil, err
	}
	var out *store.Thing
	err := s.view(ctx, func(r *rtx) error {
		var err error
		out, err = r.registeredThing(name)
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
	return s.submit(ctx, func(w *wtx) error {
		th, err := w.registeredThing(in.ThingName)
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
		if err := w.del(thingRegKey(th.ThingName)); err != nil {
			return err
		}
		return w.removeAllPending(th.ThingName)
	})
}

// removeAllPending moves every pending execution of a deleted thing to
// REMOVED.
func (w *wtx) removeAllPending(thing string) error {
	t, err := w.openThing(thing)
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
	limit, start, err := page(in, []byte{prefixThingReg})
	if err != nil {
		return nil, err
	}
	out := &store.ThingsPage{}
	err = s.view(ctx, func(r *rtx) error {
		return r.each([]byte{prefixThingReg}, start, false, func(k, v []byte) (bool, error) {
			if len(out.Things) == limit {
				out.NextToken = store.NameListToken(out.Things[limit-1].ThingName)
				return false, nil
			}
			var th store.Thing
			if err := json.Unmarshal(v, &th); err != nil {
				return false, err
			}
			out.Things = append(out.Things, &th)
			return true, nil
		})
	})
	return out, err
}

// page reads a name-ordered page request: the limit and where to start.
func page(in *store.PageInput, prefix []byte) (int, []byte, error) {
	limit, err := store.PageSize(in.MaxResults)
	if err != nil {
		return 0, nil, err
	}
	if in.NextToken == "" {
		return limit, nil, nil
	}
	after, err := store.DecodeListToken(in.NextToken)
	if err != nil {
		return 0, nil, err
	}
	return limit, append(append(append([]byte(nil), prefix...), after...), 0), nil
}

// pageNames slices a sorted name list by a page request.
func pageNames(names []string, in *store.PageInput) (*store.NamesPage, error) {
	limit, err := store.PageSize(in.MaxResults)
	if err != nil {
		return nil, err
	}
	if in.NextToken != "" {
		after, err := store.DecodeListToken(in.NextToken)
		if err != nil {
			return nil, err
		}
		i, found := slices.BinarySearch(names, string(after))
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
	err := s.submit(ctx, func(w *wtx) error {
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
		if in.ParentName != "" {
			parent, err := w.group(in.ParentName)
			if err != nil {
				return err
			}
			anc = append(parent.Ancestors, parent.Name)
			if len(anc) >= store.MaxGroupDepth {
				return store.Errorf(store.ErrInvalidRequest, "thing groups nest at most %d levels deep", store.MaxGroupDepth)
			}
			if err := w.set(childKey(in.ParentName, in.Name), nil); err != nil {
				return err
			}
		}
		out = &store.ThingGroup{Name: in.Name, ID: store.NewID(), ParentName: in.ParentName, Description: in.Description,
			Attributes: in.Attributes, Version: 1, CreatedAt: w.now}
		if err := w.setJSON(groupKey(in.Name), out); err != nil {
			return err
		}
		out.Ancestors = anc
		return nil
	})
	return out, err
}

// DescribeThingGroup returns a thing group with its ancestors.
func (s *Store) DescribeThingGroup(ctx context.Context, name string) (*store.ThingGroup, error) {
	if err := store.ValidateThingGroupName(name); err != nil {
		return nil, err
	}
	var out *store.ThingGroup
	err := s.view(ctx, func(r *rtx) error {
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
	return s.submit(ctx, func(w *wtx) error {
		g, err := w.group(in.Name)
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
		var jobKeys [][]byte
		if err := w.eachKey(groupJobPrefix(g.Name), nil, false, func(k []byte) (bool, error) {
			jobKeys = append(jobKeys, k)
			return true, nil
		}); err != nil {
			return err
		}
		for _, k := range append(jobKeys, groupKey(g.Name)) {
			if err := w.del(k); err != nil {
				return err
			}
		}
		if g.ParentName != "" {
			return w.del(childKey(g.ParentName, g.Name))
		}
		return nil
	})
}

// ListThingGroups lists groups by name.
func (s *Store) ListThingGroups(ctx context.Context, in *store.ListThingGroupsInput) (*store.GroupsPage, error) {
	var names []string
	err := s.view(ctx, func(r *rtx) error {
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
				if err := r.eachKey(childPrefix(in.ParentGroup), nil, false, func(k []byte) (bool, error) {
					names = append(names, lastPart(k))
					return true, nil
				}); err != nil {
					return err
				}
			}
		} else {
			if err := r.eachKey([]byte{prefixGroup}, nil, false, func(k []byte) (bool, error) {
				names = append(names, string(k[1:]))
				return true, nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if in.NamePrefixFilter != "" {
		names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, in.NamePrefixFilter) })
	}
	slices.Sort(names)
	return s.groupsPage(ctx, names, &in.PageInput)
}

func (s *Store) groupsPage(ctx context.Context, names []string, in *store.PageInput) (*store.GroupsPage, error) {
	p, err := pageNames(names, in)
	if err != nil {
		return nil, err
	}
	out := &store.GroupsPage{NextToken: p.NextToken}
	err = s.view(ctx, func(r *rtx) error {
		for _, n := range p.Names {
			g, err := r.group(n)
			if err != nil {
				return err
			}
			out.Groups = append(out.Groups, g)
		}
		return nil
	})
	return out, err
}

// AddThingToThingGroup adds a registered thing to a group. Continuous jobs
// that target the group, or a group above it, give the thing an execution.
func (s *Store) AddThingToThingGroup(ctx context.Context, in *store.MembershipInput) error {
	if err := store.ValidateMembership(in); err != nil {
		return err
	}
	return s.submit(ctx, func(w *wtx) error {
		if _, err := w.registeredThing(in.ThingName); err != nil {
			return err
		}
		g, err := w.group(in.ThingGroupName)
		if err != nil {
			return err
		}
		member, err := w.has(memberKey(g.Name, in.ThingName))
		if err != nil || member {
			return err
		}
		groups, err := w.groupsOf(in.ThingName)
		if err != nil {
			return err
		}
		if len(groups) >= store.MaxGroupsPerThing {
			return store.Errorf(store.ErrInvalidRequest, "thing %s already belongs to %d groups, the most it may", in.ThingName, store.MaxGroupsPerThing)
		}
		if err := w.set(memberKey(g.Name, in.ThingName), nil); err != nil {
			return err
		}
		if err := w.set(thingOfKey(in.ThingName, g.Name), nil); err != nil {
			return err
		}
		return w.reconcileGroups(append(g.Ancestors, g.Name), in.ThingName)
	})
}

// RemoveThingFromThingGroup takes a thing out of a group. Continuous jobs
// that no longer cover it set its pending execution REMOVED.
func (s *Store) RemoveThingFromThingGroup(ctx context.Context, in *store.MembershipInput) error {
	if err := store.ValidateMembership(in); err != nil {
		return err
	}
	return s.submit(ctx, func(w *wtx) error {
		if _, err := w.group(in.ThingGroupName); err != nil {
			return err
		}
		return w.leaveGroup(in.ThingGroupName, in.ThingName)
	})
}

// leaveGroup removes a membership and reconciles the continuous jobs that
// targeted the group or its ancestors.
func (w *wtx) leaveGroup(group, thing string) error {
	member, err := w.has(memberKey(group, thing))
	if err != nil || !member {
		return err
	}
	if err := w.del(memberKey(group, thing)); err != nil {
		return err
	}
	if err := w.del(thingOfKey(thing, group)); err != nil {
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
	jobs := map[string]bool{}
	for _, g := range groups {
		err := w.eachKey(groupJobPrefix(g), nil, false, func(k []byte) (bool, error) {
			jobs[lastPart(k)] = true
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(jobs)) {
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
	t, err := w.openThing(thing)
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
	var targets []string
	if err := w.getJSON(jobTargetsKey(job.JobID), &targets); err != nil && !errors.Is(err, errMissing) {
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
	err := s.view(ctx, func(r *rtx) error {
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
	var names []string
	err := s.view(ctx, func(r *rtx) error {
		if _, err := r.registeredThing(thing); err != nil {
			return err
		}
		var err error
		names, err = r.groupsOf(thing)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return s.groupsPage(ctx, names, in)
}
