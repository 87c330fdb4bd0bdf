package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jobsbroker/jobsbroker/broker"
)

var waitCmd = &command{
	name:     "wait",
	synopsis: "-api URL -thing T -job J -status S [-timeout D] [-ca FILE]",
	short:    "wait until a job execution reaches a status",
	long: `
Wait waits until a thing's execution of a job has a status, for scripts
and CI jobs in any language, and prints the execution as JSON (the
execution of DescribeJobExecution). It exits 0 when the execution reaches
the status, 1 when it ends in another terminal status (or the broker
answers with an error), and 2 when the timeout passes first; usage
mistakes exit 2 too.

It asks the broker's GET /admin/wait, and keeps asking while the broker is
not up yet, so it may start before the broker. Requests are signed with
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION) when they are
set, as a broker with a credentials file requires. Flags take one dash or
two (--thing).`,
	flags: func(c *cli) (*flag.FlagSet, func(context.Context, []string) error) {
		fs := flag.NewFlagSet("wait", flag.ContinueOnError)
		api := fs.String("api", "http://127.0.0.1:8080", "base URL of the broker's API")
		thing := fs.String("thing", "", "the thing (required)")
		job := fs.String("job", "", "the job (required)")
		status := fs.String("status", "SUCCEEDED", "the status to wait for: QUEUED, IN_PROGRESS, SUCCEEDED, FAILED, TIMED_OUT, REJECTED, REMOVED or CANCELED")
		timeout := fs.Duration("timeout", 30*time.Second, "how long to wait")
		ca := fs.String("ca", "", "PEM bundle of the CA that signed the API's certificate, for https:// URLs")
		return fs, func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return &usageError{cmd: "wait", err: fmt.Errorf("unexpected argument %q", args[0])}
			}
			if *thing == "" || *job == "" {
				return &usageError{cmd: "wait", err: errors.New("wait needs -thing and -job")}
			}
			if *timeout <= 0 {
				return &usageError{cmd: "wait", err: fmt.Errorf("-timeout %v must be positive", *timeout)}
			}
			return wait(ctx, c, waitQuery{api: strings.TrimRight(*api, "/"), thing: *thing, job: *job, status: *status, ca: *ca}, *timeout)
		}
	},
}

type waitQuery struct{ api, thing, job, status, ca string }

// errWaitTimeout is a wait whose timeout passed: exit status 2.
var errWaitTimeout = errors.New("timed out")

// exitError is an error with its own exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// waitChunk is the longest one GET /admin/wait is asked to wait, well
// inside the broker's limit and any proxy's idle timeout.
const waitChunk = 25 * time.Second

// wait asks GET /admin/wait until the outcome is known or the timeout
// passes, and prints the execution.
func wait(ctx context.Context, c *cli, q waitQuery, timeout time.Duration) error {
	client, err := adminClient(q.ca)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		left := time.Until(deadline)
		if left <= 0 {
			if last != nil {
				return &exitError{2, fmt.Errorf("%w after %v; the last try: %v", errWaitTimeout, timeout, last)}
			}
			return &exitError{2, fmt.Errorf("%w after %v: %s's execution of %s is not %s", errWaitTimeout, timeout, q.thing, q.job, q.status)}
		}
		res, err := waitOnce(ctx, client, c, q, min(left, waitChunk))
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			var ae *apiError
			if errors.As(err, &ae) && ae.status < 500 {
				return err // a mistake in the request: asking again will not help
			}
			last = err
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(min(200*time.Millisecond, max(time.Until(deadline), 0))):
			}
			continue
		}
		if res.Outcome == broker.WaitTimeout {
			continue // the next chunk, or the end
		}
		fmt.Fprintf(c.stdout, "%s\n", res.Execution)
		if res.Outcome == broker.WaitReached {
			return nil
		}
		var e struct {
			Status string `json:"status"`
		}
		json.Unmarshal(res.Execution, &e)
		return &exitError{1, fmt.Errorf("%s's execution of %s ended %s, not %s", q.thing, q.job, e.Status, q.status)}
	}
}

// apiError is an error answer of the broker.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func waitOnce(ctx context.Context, client *http.Client, c *cli, q waitQuery, d time.Duration) (*broker.WaitResult, error) {
	v := url.Values{"thing": {q.thing}, "job": {q.job}, "status": {q.status}, "timeout": {d.Round(time.Millisecond).String()}}
	req, err := adminRequest(ctx, q.api+"/admin/wait?"+v.Encode(), c.getenv)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var res broker.WaitResult
	if json.Unmarshal(body, &res) != nil || res.Outcome == "" {
		return nil, &apiError{resp.StatusCode, fmt.Sprintf("%s answered %s: %s", q.api, resp.Status, strings.TrimSpace(string(body)))}
	}
	return &res, nil
}
