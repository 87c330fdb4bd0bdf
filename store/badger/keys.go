package badger

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// Key layout. Thing names and job ids never contain 0x00 (their patterns
// forbid it), so 0x00 separates variable-length parts and keeps prefixes
// unambiguous. Numbers are big-endian so that keys sort numerically.
//
//	m<name>                                  metadata (sequence counter, schema version)
//	j<job>                                   job record
//	d<job>                                   job document
//	g<job>                                   job target ARNs (kept apart: a job may have very many)
//	n<job>                                   job process details (counts)
//	o<seq:8>                                 job id, in creation order (ListJobs)
//	q<job>                                   background task of a job (rollout, cancel, delete)
//	r<job>0<chunk:4>                         chunk of a job's resolved target things
//	p<thing>0<ns>0<rank:1><queueSeq:8>       the thing's queue of job namespace ns ("" for jobs
//	                                         without one): one entry a pending execution (rank 0
//	                                         IN_PROGRESS, 1 QUEUED), its summary as value
//	t<thing>                                 the thing's pending set, in schema 1 (migrated to p at start)
//	e<thing>0<job>0<execution:8>             execution record
//	x<job>0<thing>0<execution:8>             executions-of-a-job index
//	w<deadline:8><thing>0<job>0<execution:8> timer index, by deadline
//	u<job>                                   job document before documentParameters were substituted
//	h<thing>                                 registered thing
//	G<group>                                 thing group
//	C<parent>0<child>                        child groups of a group
//	M<group>0<thing>                         things in a group (direct members)
//	N<thing>0<group>                         groups of a thing (direct)
//	k<group>0<job>                           jobs that target a group
//	P<template>                              job template
//
// MQTT sessions live beside them under S, U, Q and R (sessions.go).
const (
	prefixMeta      = 'm'
	prefixJob       = 'j'
	prefixDoc       = 'd'
	prefixJobTarget = 'g'
	prefixCounts    = 'n'
	prefixJobOrder  = 'o'
	prefixTask      = 'q'
	prefixTargets   = 'r'
	prefixThing     = 't' // schema 1 only
	prefixQueue     = 'p' // not Q: sessions.go keeps a client's messages there
	prefixExec      = 'e'
	prefixJobExec   = 'x'
	prefixTimer     = 'w'
	prefixDocBefore = 'u'
	prefixThingReg  = 'h'
	prefixGroup     = 'G'
	prefixChild     = 'C'
	prefixMember    = 'M'
	prefixThingOf   = 'N'
	prefixGroupJob  = 'k'
	prefixTemplate  = 'P'
	metaEvents      = "mevents"
	metaSeq         = "mseq"
	metaSchema      = "mschema"
	schemaVersion   = "3"
	schemaV1        = "1"
	executionKeyLen = 8
)

func key(prefix byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n+executionKeyLen)
	b = append(b, prefix)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

func jobKey(job string) []byte { return key(prefixJob, job) }
func docKey(job string) []byte { return key(prefixDoc, job) }
func jobTargetsKey(job string) []byte {
	return key(prefixJobTarget, job)
}
func countsKey(job string) []byte { return key(prefixCounts, job) }
func taskKey(job string) []byte   { return key(prefixTask, job) }

// queuePrefix is the prefix of the entries of a thing's queue of job
// namespace ns.
func queuePrefix(thing, ns string) []byte { return append(key(prefixQueue, thing, ns), 0) }

// queueKey is the key of a pending execution's entry in its thing's queue
// of namespace ns: its rank (IN_PROGRESS before QUEUED) and queue order
// sort the queue.
func queueKey(thing, ns string, p *store.PendingExecution) []byte {
	rank := byte(1)
	if p.Status == store.StatusInProgress {
		rank = 0
	}
	// Room for the entry too, which the caller may append after the key.
	b := make([]byte, 0, 3+len(thing)+len(ns)+1+8+48+len(p.JobID))
	b = append(append(append(b, prefixQueue), thing...), 0)
	b = append(append(b, ns...), 0, rank)
	return binary.BigEndian.AppendUint64(b, p.QueueSeq)
}

// queueNamespace returns the namespace of a p key of thing.
func queueNamespace(k []byte, thing string) (string, bool) {
	rest := k[min(len(k), 1+len(thing)+1):]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return "", false
	}
	return string(rest[:i]), true
}

func jobOrderKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixJobOrder}, seq)
}

func targetsKey(job string, chunk int) []byte {
	return binary.BigEndian.AppendUint32(append(key(prefixTargets, job), 0), uint32(chunk))
}

func targetsPrefix(job string) []byte { return append(key(prefixTargets, job), 0) }

// execPrefix is the prefix of every execution of job on thing; with job ""
// it is the prefix of every execution of the thing.
func execPrefix(thing, job string) []byte {
	if job == "" {
		return append(key(prefixExec, thing), 0)
	}
	return append(key(prefixExec, thing, job), 0)
}

func execKey(thing, job string, n int64) []byte {
	return binary.BigEndian.AppendUint64(execPrefix(thing, job), uint64(n))
}

func jobExecPrefix(job string) []byte { return append(key(prefixJobExec, job), 0) }

func jobExecKey(job, thing string, n int64) []byte {
	return binary.BigEndian.AppendUint64(append(key(prefixJobExec, job, thing), 0), uint64(n))
}

// parseJobExecKey returns the thing and execution number of an x key.
func parseJobExecKey(k []byte, job string) (string, int64, bool) {
	rest := k[len(jobExecPrefix(job)):]
	if len(rest) < executionKeyLen+1 {
		return "", 0, false
	}
	thing := rest[:len(rest)-executionKeyLen-1]
	if rest[len(thing)] != 0 {
		return "", 0, false
	}
	return string(thing), int64(binary.BigEndian.Uint64(rest[len(rest)-executionKeyLen:])), true
}

// parseExecKey returns the job and execution number of an e key of thing.
func parseExecKey(k []byte, thing string) (string, int64, bool) {
	rest := k[len(execPrefix(thing, "")):]
	if len(rest) < executionKeyLen+1 {
		return "", 0, false
	}
	job := rest[:len(rest)-executionKeyLen-1]
	if rest[len(job)] != 0 {
		return "", 0, false
	}
	return string(job), int64(binary.BigEndian.Uint64(rest[len(rest)-executionKeyLen:])), true
}

func timerKey(deadline time.Time, thing, job string, n int64) []byte {
	b := binary.BigEndian.AppendUint64([]byte{prefixTimer}, uint64(deadline.UnixNano()))
	b = append(b, thing...)
	b = append(b, 0)
	b = append(b, job...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, uint64(n))
}

// parseTimerKey splits a w key.
func parseTimerKey(k []byte) (deadline time.Time, thing, job string, n int64, ok bool) {
	if len(k) < 1+8+1+1+executionKeyLen || k[0] != prefixTimer {
		return time.Time{}, "", "", 0, false
	}
	deadline = time.Unix(0, int64(binary.BigEndian.Uint64(k[1:9])))
	rest := k[9 : len(k)-executionKeyLen-1]
	i := bytes.IndexByte(rest, 0)
	if i < 0 || k[len(k)-executionKeyLen-1] != 0 {
		return time.Time{}, "", "", 0, false
	}
	return deadline, string(rest[:i]), string(rest[i+1:]), int64(binary.BigEndian.Uint64(k[len(k)-executionKeyLen:])), true
}

func docBeforeKey(job string) []byte  { return key(prefixDocBefore, job) }
func thingRegKey(thing string) []byte { return key(prefixThingReg, thing) }
func groupKey(group string) []byte    { return key(prefixGroup, group) }
func templateKey(id string) []byte    { return key(prefixTemplate, id) }
func childKey(parent, child string) []byte {
	return key(prefixChild, parent, child)
}
func childPrefix(parent string) []byte { return append(key(prefixChild, parent), 0) }
func memberKey(group, thing string) []byte {
	return key(prefixMember, group, thing)
}
func memberPrefix(group string) []byte { return append(key(prefixMember, group), 0) }
func thingOfKey(thing, group string) []byte {
	return key(prefixThingOf, thing, group)
}
func thingOfPrefix(thing string) []byte { return append(key(prefixThingOf, thing), 0) }
func groupJobKey(group, job string) []byte {
	return key(prefixGroupJob, group, job)
}
func groupJobPrefix(group string) []byte { return append(key(prefixGroupJob, group), 0) }

// lastPart returns what follows the last 0 in a key.
func lastPart(k []byte) string {
	return string(k[bytes.LastIndexByte(k, 0)+1:])
}
