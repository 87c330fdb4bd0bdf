package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/store"
)

func createJob(t *testing.T, b *brokertest.Instance, id string, things ...string) {
	t.Helper()
	in := &store.CreateJobInput{Job: store.Job{JobID: id}, Document: `{"operation":"` + id + `"}`}
	for _, th := range things {
		in.Job.Targets = append(in.Job.Targets, brokertest.ThingARN(th))
	}
	if _, err := b.Store.CreateJob(context.Background(), in); err != nil {
		t.Fatalf("CreateJob %s: %v", id, err)
	}
}

// notifications returns the notify and notify-next messages received so
// far, in order, as compact strings: "notify IN_PROGRESS:[a] QUEUED:[b c]"
// or "next a QUEUED v1" / "next -".
func notifications(t *testing.T, msgs []brokertest.Message) []string {
	var out []string
	for _, m := range msgs {
		v := m.JSON(t)
		ts, ok := v["timestamp"].(float64)
		if !ok || ts != float64(brokertest.Epoch.Unix()) {
			t.Fatalf("%s: timestamp %v must be integer epoch seconds", m.Topic, v["timestamp"])
		}
		switch {
		case strings.HasSuffix(m.Topic, "/notify"):
			jobs := v["jobs"].(map[string]any)
			s := "notify"
			for _, status := range []string{"IN_PROGRESS", "QUEUED"} {
				if list, ok := jobs[status].([]any); ok {
					if len(list) == 0 {
						t.Fatalf("notify lists an empty %s key: %s", status, m.Payload)
					}
					var ids []string
					for _, e := range list {
						ids = append(ids, e.(map[string]any)["jobId"].(string))
					}
					s += " " + status + ":[" + strings.Join(ids, " ") + "]"
				}
			}
			if len(jobs) == 0 {
				s += " {}"
			}
			out = append(out, s)
		case strings.HasSuffix(m.Topic, "/notify-next"):
			e, ok := v["execution"].(map[string]any)
			if !ok {
				if len(v) != 1 {
					t.Fatalf("empty notify-next must hold only the timestamp: %s", m.Payload)
				}
				out = append(out, "next -")
				continue
			}
			out = append(out, "next "+e["jobId"].(string)+" "+e["status"].(string)+" v"+jsonNumber(e["versionNumber"]))
		}
	}
	return out
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestWorkedSequence replays the sequence of PROTOCOL.md §6.3 and checks
// every notify and notify-next message, and that no other is sent.
func TestWorkedSequence(t *testing.T) {
	b := brokertest.Start(t)
	for _, version := range []int{4, 5} {
		thing := "dev-v" + jsonNumber(version)
		d := brokertest.Connect(t, b.MQTTAddr(), thing, version)
		base := "$aws/things/" + thing + "/jobs/"
		d.Subscribe(base+"notify", 1)
		d.Subscribe(base+"notify-next", 1)
		job := func(id string) string { return thing + "-" + id }

		createJob(t, b, job("job1"), thing)
		createJob(t, b, job("job2"), thing)
		d.MustAccept(base+"start-next", map[string]any{})
		createJob(t, b, job("job3"), thing)
		d.MustAccept(base+job("job1")+"/update", map[string]any{"status": "SUCCEEDED"})
		d.MustAccept(base+job("job3")+"/update", map[string]any{"status": "IN_PROGRESS"})
		d.MustAccept(base+job("job2")+"/update", map[string]any{"status": "REJECTED"})
		if err := b.Store.DeleteJob(context.Background(), &store.DeleteJobInput{JobID: job("job3"), Force: true}); err != nil {
			t.Fatal(err)
		}
		j1, j2, j3 := job("job1"), job("job2"), job("job3")
		want := []string{
			"notify QUEUED:[" + j1 + "]", "next " + j1 + " QUEUED v1", // job1 queued
			"notify QUEUED:[" + j1 + " " + j2 + "]", // job2 queued
			// device starts job1: nothing
			"notify IN_PROGRESS:[" + j1 + "] QUEUED:[" + j2 + " " + j3 + "]",     // job3 queued
			"notify QUEUED:[" + j2 + " " + j3 + "]", "next " + j2 + " QUEUED v1", // job1 succeeded
			"next " + j3 + " IN_PROGRESS v2",  // job3 in progress
			"notify IN_PROGRESS:[" + j3 + "]", // job2 rejected
			"notify {}", "next -",             // job3 force-deleted
		}
		var got []string
		brokertest.Eventually(t, "all notifications", func() error {
			got = notifications(t, filter(d.Received(), "/notify", "/notify-next"))
			if len(got) < len(want) {
				return fmt.Errorf("%d of %d notifications: %q", len(got), len(want), got)
			}
			return nil
		})
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("MQTT %d notifications:\n got %q\nwant %q", version, got, want)
		}
		// Nothing else was on its way: a later change makes the very next
		// notifications the device gets.
		d.Messages()
		createJob(t, b, job("barrier"), thing)
		brokertest.Eventually(t, "barrier notifications", func() error {
			got = notifications(t, filter(d.Received(), "/notify", "/notify-next"))
			if len(got) < 2 {
				return fmt.Errorf("%q", got)
			}
			return nil
		})
		if want := "notify QUEUED:[" + job("barrier") + "]\nnext " + job("barrier") + " QUEUED v1"; strings.Join(got, "\n") != want {
			t.Fatalf("after the barrier got %q", got)
		}
	}
}

func filter(msgs []brokertest.Message, suffixes ...string) []brokertest.Message {
	var out []brokertest.Message
	for _, m := range msgs {
		for _, s := range suffixes {
			if strings.HasSuffix(m.Topic, s) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}
