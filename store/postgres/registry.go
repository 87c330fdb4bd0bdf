package postgres

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/engine"
)

// lockClause is the row lock a read takes.
func lockClause(lock engine.LockMode) string {
	switch lock {
	case engine.LockShare:
		return " FOR SHARE"
	case engine.LockUpdate:
		return " FOR UPDATE"
	}
	return ""
}

// record reads one JSON record, or nil when there is none.
func record[T any](w *wtx, sql, id, what string) (*T, error) {
	var rec []byte
	err := w.queryRow(sql, []any{id}, &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decode[T](rec, what+" "+id)
}

// eachRecord walks name-ordered JSON records after a name, a chunk at a
// time (the query takes the name and a row limit).
func eachRecord[T any](w *wtx, sql, after, what string, name func(*T) string, fn func(*T) (bool, error)) error {
	return walk(w, what, func(last *T) (pgx.Rows, error) {
		if last != nil {
			after = name(last)
		}
		return w.query(sql, after, listChunk)
	}, fn)
}

// names runs a query that returns names.
func (w *wtx) names(sql string, args ...any) ([]string, error) {
	rows, err := w.query(sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Thing loads a registered thing.
func (w *wtx) Thing(name string, lock engine.LockMode) (*store.Thing, error) {
	return record[store.Thing](w, "SELECT record FROM things WHERE thing_name = $1"+lockClause(lock), name, "thing")
}

// EachThing walks the registered things by name.
func (w *wtx) EachThing(after string, fn func(*store.Thing) (bool, error)) error {
	return eachRecord(w, "SELECT record FROM things WHERE thing_name > $1 ORDER BY thing_name LIMIT $2", after, "thing",
		func(th *store.Thing) string { return th.ThingName }, fn)
}

// ancestorsQuery lists a group's ancestors, root first.
const ancestorsQuery = `WITH RECURSIVE up(name, parent, depth) AS (
		SELECT group_name, parent_name, 0 FROM thing_groups WHERE group_name = $1
		UNION ALL
		SELECT g.group_name, g.parent_name, up.depth + 1 FROM thing_groups g JOIN up ON g.group_name = up.parent
		WHERE up.depth < 16)
	SELECT name FROM up WHERE depth > 0 ORDER BY depth DESC`

// Group loads a thing group with its ancestors.
func (w *wtx) Group(name string, lock engine.LockMode) (*store.ThingGroup, error) {
	g, err := record[store.ThingGroup](w, "SELECT record FROM thing_groups WHERE group_name = $1"+lockClause(lock), name, "thing group")
	if err != nil || g == nil {
		return nil, err
	}
	if g.Ancestors, err = w.names(ancestorsQuery, name); err != nil {
		return nil, err
	}
	return g, nil
}

// GroupNames lists every group, or parent's children.
func (w *wtx) GroupNames(parent string) ([]string, error) {
	if parent == "" {
		return w.names("SELECT group_name FROM thing_groups")
	}
	return w.names("SELECT group_name FROM thing_groups WHERE parent_name = $1", parent)
}

// Subtree returns group and all its descendants, the group first.
func (w *wtx) Subtree(group string) ([]string, error) {
	return w.names(`WITH RECURSIVE down(name, depth) AS (
			SELECT $1::text COLLATE "C", 0
			UNION
			SELECT g.group_name, down.depth + 1 FROM thing_groups g JOIN down ON g.parent_name = down.name
			WHERE down.depth < 16)
		SELECT name FROM down ORDER BY depth, name`, group)
}

// GroupThings returns the direct members of groups, sorted.
func (w *wtx) GroupThings(groups []string) ([]string, error) {
	return w.names("SELECT DISTINCT thing_name FROM group_members WHERE group_name = ANY($1) ORDER BY thing_name", groups)
}

// GroupsOf returns the groups a thing belongs to directly, by name.
func (w *wtx) GroupsOf(thing string) ([]string, error) {
	return w.names("SELECT group_name FROM group_members WHERE thing_name = $1 ORDER BY group_name", thing)
}

// EnclosingGroups returns the thing's groups and all their ancestors.
func (w *wtx) EnclosingGroups(thing string) (map[string]bool, error) {
	names, err := w.names(`WITH RECURSIVE up(name, depth) AS (
			SELECT group_name, 0 FROM group_members WHERE thing_name = $1
			UNION
			SELECT g.parent_name, up.depth + 1 FROM thing_groups g JOIN up ON g.group_name = up.name
			WHERE g.parent_name IS NOT NULL AND up.depth < 16)
		SELECT DISTINCT name FROM up`, thing)
	if err != nil {
		return nil, err
	}
	all := make(map[string]bool, len(names))
	for _, n := range names {
		all[n] = true
	}
	return all, nil
}

// Template loads a job template.
func (w *wtx) Template(id string) (*store.JobTemplate, error) {
	return record[store.JobTemplate](w, "SELECT record FROM job_templates WHERE template_id = $1", id, "job template")
}

// EachTemplate walks the job templates by id.
func (w *wtx) EachTemplate(after string, fn func(*store.JobTemplate) (bool, error)) error {
	return eachRecord(w, "SELECT record FROM job_templates WHERE template_id > $1 ORDER BY template_id LIMIT $2", after,
		"job template", func(t *store.JobTemplate) string { return t.JobTemplateID }, fn)
}

// EventConfig reads the stored event configuration.
func (w *wtx) EventConfig(lock engine.LockMode) (store.EventConfigurations, error) {
	cfg, err := record[store.EventConfigurations](w, "SELECT value FROM meta WHERE key = $1"+lockClause(lock), metaEvents, "event configuration")
	if err != nil || cfg == nil {
		return store.EventConfigurations{}, err
	}
	return *cfg, nil
}

// insert runs an INSERT ... ON CONFLICT DO NOTHING of a JSON record and
// reports whether it inserted.
func (w *wtx) insert(sql string, v any, args ...any) (bool, error) {
	rec, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("encode: %w", err)
	}
	n, err := w.execNow(sql, append(args, rec)...)
	return n == 1, err
}

// InsertThing stores a thing; one registered meanwhile makes the
// operation run again.
func (w *wtx) InsertThing(th *store.Thing) error {
	ok, err := w.insert("INSERT INTO things (thing_name, record) VALUES ($1, $2) ON CONFLICT DO NOTHING", th, th.ThingName)
	if err == nil && !ok {
		return errConflict
	}
	return err
}

// DeleteThing removes a registered thing.
func (w *wtx) DeleteThing(name string) error {
	w.queue("DELETE FROM things WHERE thing_name = $1", name)
	return nil
}

// InsertGroup stores a group; one created meanwhile makes the operation
// run again.
func (w *wtx) InsertGroup(g *store.ThingGroup) error {
	var parent *string
	if g.ParentName != "" {
		parent = &g.ParentName
	}
	rec := *g
	rec.Ancestors = nil
	ok, err := w.insert("INSERT INTO thing_groups (group_name, parent_name, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		&rec, g.Name, parent)
	if err == nil && !ok {
		return errConflict
	}
	return err
}

// DeleteGroup removes a group and the jobs' references to it.
func (w *wtx) DeleteGroup(g *store.ThingGroup) error {
	w.queue("DELETE FROM group_jobs WHERE group_name = $1", g.Name)
	w.queue("DELETE FROM thing_groups WHERE group_name = $1", g.Name)
	return nil
}

// AddMember adds a thing to a group.
func (w *wtx) AddMember(group, thing string) (bool, error) {
	n, err := w.execNow("INSERT INTO group_members (group_name, thing_name) VALUES ($1, $2) ON CONFLICT DO NOTHING", group, thing)
	return n == 1, err
}

// RemoveMember takes a thing out of a group.
func (w *wtx) RemoveMember(group, thing string) (bool, error) {
	n, err := w.execNow("DELETE FROM group_members WHERE group_name = $1 AND thing_name = $2", group, thing)
	return n == 1, err
}

// InsertTemplate stores a new job template.
func (w *wtx) InsertTemplate(t *store.JobTemplate) (bool, error) {
	return w.insert("INSERT INTO job_templates (template_id, record) VALUES ($1, $2) ON CONFLICT DO NOTHING", t, t.JobTemplateID)
}

// DeleteTemplate deletes a job template.
func (w *wtx) DeleteTemplate(id string) (bool, error) {
	n, err := w.execNow("DELETE FROM job_templates WHERE template_id = $1", id)
	return n == 1, err
}

// SetEventConfig stores the event configuration.
func (w *wtx) SetEventConfig(cfg store.EventConfigurations) error {
	b, err := json.Marshal(&cfg)
	if err != nil {
		return err
	}
	w.queue("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", metaEvents, b)
	w.configChanged = true
	return nil
}
