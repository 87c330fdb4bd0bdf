package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of jobsbroker's ARNs (its -region and -account).
const (
	benchRegion  = "us-east-1"
	benchAccount = "123456789012"
)

// maxTargetBytes bounds the JSON of a CreateJob's target list: jobsbroker
// reads request bodies up to 1 MiB. Bigger fleets go through a thing group.
// It is a variable for tests.
var maxTargetBytes = 900 << 10

// apiClient calls the control-plane HTTP API (the AWS IoT API shape).
type apiClient struct {
	base string
	http *http.Client
}

func newAPIClient(base string, conns int) *apiClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	return &apiClient{base: base, http: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}
}

// apiError is an error answer of the API.
type apiError struct {
	Status int
	Type   string
	Body   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Type, e.Body)
}

func isAlreadyExists(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Type == "ResourceAlreadyExistsException"
}

// call sends one request; a non-2xx answer is an *apiError.
func (a *apiClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %w", method, path,
			&apiError{Status: resp.StatusCode, Type: resp.Header.Get("x-amzn-ErrorType"), Body: string(data)})
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func thingARN(thing string) string {
	return "arn:aws:iot:" + benchRegion + ":" + benchAccount + ":thing/" + thing
}

func groupARN(group string) string {
	return "arn:aws:iot:" + benchRegion + ":" + benchAccount + ":thinggroup/" + group
}

// createJob creates a snapshot job with a document for targets.
func (a *apiClient) createJob(ctx context.Context, jobID string, targets []string, document string) error {
	in := map[string]any{"targets": targets, "document": document}
	return a.call(ctx, http.MethodPut, "/jobs/"+url.PathEscape(jobID), in, nil)
}

// jobState is what jobsbench reads of DescribeJob.
type jobState struct {
	Status       string `json:"status"`
	IsConcurrent bool   `json:"isConcurrent"`
	Details      struct {
		Queued     int64 `json:"numberOfQueuedThings"`
		InProgress int64 `json:"numberOfInProgressThings"`
		Succeeded  int64 `json:"numberOfSucceededThings"`
	} `json:"jobProcessDetails"`
}

// executions is how many executions the job has queued or further.
func (j *jobState) executions() int64 {
	return j.Details.Queued + j.Details.InProgress + j.Details.Succeeded
}

func (a *apiClient) describeJob(ctx context.Context, jobID string) (*jobState, error) {
	var out struct {
		Job jobState `json:"job"`
	}
	if err := a.call(ctx, http.MethodGet, "/jobs/"+url.PathEscape(jobID), nil, &out); err != nil {
		return nil, err
	}
	return &out.Job, nil
}

// waitRolledOut polls DescribeJob every interval until the job has want
// executions and no rollout in progress. progress, if set, is told the
// number of executions at each poll.
func (a *apiClient) waitRolledOut(ctx context.Context, jobID string, want int64, interval time.Duration, progress func(int64)) error {
	for {
		j, err := a.describeJob(ctx, jobID)
		if err != nil {
			return fmt.Errorf("wait for the rollout of %s: %w", jobID, err)
		}
		if progress != nil {
			progress(j.executions())
		}
		if !j.IsConcurrent && j.executions() >= want {
			return nil
		}
		if !j.IsConcurrent && j.Status != "IN_PROGRESS" {
			return fmt.Errorf("job %s is %s with %d executions, not %d", jobID, j.Status, j.executions(), want)
		}
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return fmt.Errorf("wait for the rollout of %s: %w", jobID, ctx.Err())
		}
	}
}

// targetsFor returns job targets that cover things: their ARNs when the
// list fits in one CreateJob request, else a thing group named group that
// is created and filled through the registry API (with conc requests in
// flight; done counts registered things).
func (a *apiClient) targetsFor(ctx context.Context, things []string, group string, conc int, done *atomic.Int64) ([]string, error) {
	size := 0
	for _, t := range things {
		size += len(thingARN(t)) + 3
	}
	if size <= maxTargetBytes {
		arns := make([]string, len(things))
		for i, t := range things {
			arns[i] = thingARN(t)
		}
		done.Add(int64(len(things)))
		return arns, nil
	}
	if err := a.call(ctx, http.MethodPost, "/thing-groups/"+url.PathEscape(group), map[string]any{}, nil); err != nil && !isAlreadyExists(err) {
		return nil, fmt.Errorf("create thing group %s: %w", group, err)
	}
	err := parallel(ctx, len(things), conc, func(ctx context.Context, i int) error {
		thing := things[i]
		if err := a.call(ctx, http.MethodPost, "/things/"+url.PathEscape(thing), map[string]any{}, nil); err != nil && !isAlreadyExists(err) {
			return fmt.Errorf("create thing %s: %w", thing, err)
		}
		in := map[string]string{"thingGroupName": group, "thingName": thing}
		if err := a.call(ctx, http.MethodPut, "/thing-groups/addThingToThingGroup", in, nil); err != nil {
			return fmt.Errorf("add thing %s to group %s: %w", thing, group, err)
		}
		done.Add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []string{groupARN(group)}, nil
}

// parallel runs fn(i) for i in [0, n) with at most conc running; the first
// error cancels the rest and is returned.
func parallel(ctx context.Context, n, conc int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < max(1, min(conc, n)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}
