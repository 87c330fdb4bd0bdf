package console

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/jobsbroker/jobsbroker/store"
)

// apiResult is the control plane's answer to one call.
type apiResult struct {
	Status  int
	Type    string // the exception, "" on success
	Message string
	Body    []byte
}

func (a apiResult) ok() bool { return a.Status == http.StatusOK }

// recorder is the ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// call runs one control-plane operation through the API handler, exactly
// as an AWS SDK request would run: same decoding, same validation, same
// errors.
func (c *Console) call(ctx context.Context, method, path string, query url.Values, body any) apiResult {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return apiResult{Status: http.StatusInternalServerError, Type: "InternalFailureException", Message: err.Error()}
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	target := path // already escaped
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return apiResult{Status: http.StatusInternalServerError, Type: "InternalFailureException", Message: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	rec := &recorder{header: http.Header{}}
	c.opts.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	res := apiResult{Status: rec.status, Body: rec.body.Bytes()}
	if res.Status != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		json.Unmarshal(res.Body, &e)
		res.Type, res.Message = e.Type, e.Message
		if res.Type == "" {
			res.Type = rec.header.Get("x-amzn-ErrorType")
		}
		if res.Message == "" {
			res.Message = http.StatusText(res.Status)
		}
	}
	return res
}

// fieldRules map the API's error messages to the form field they concern:
// the messages name the request member first. The first matching prefix
// wins, so longer prefixes come before shorter ones they start with.
var fieldRules = []struct{ prefix, field string }{
	{"jobId", "jobId"},
	{"job template", "template"},
	{"job ", "jobId"}, // job X already exists
	{"targetSelection", "targetSelection"},
	{"targets", "targets"},
	{"target ", "targets"},
	{"thing group", "targets"},
	{"thingGroupName", "targets"},
	{"thing ", "targets"},
	{"jobTemplateArn", "template"},
	{"a job created from a jobTemplateArn", "document"},
	{"a job needs a document", "document"},
	{"document has", "document"},
	{"document must", "document"},
	{"document ", "document"},
	{"description", "description"},
	{"documentParameters", "parameters"},
	{"jobExecutionsRolloutConfig", "rollout"},
	{"exponentialRate", "rollout"},
	{"abortConfig", "abort"},
	{"timeoutConfig", "timeout"},
	{"jobExecutionsRetryConfig", "retry"},
	{"schedulingConfig.startTime", "scheduleStart"},
	{"schedulingConfig.endTime", "scheduleEnd"},
	{"schedulingConfig.endBehavior", "endBehavior"},
	{"schedulingConfig", "scheduleStart"},
	{"reasonCode", "reasonCode"},
	{"comment", "comment"},
	{"maximumPerMinute", "rollout"},
}

// fieldFor returns the form field an API error concerns, "" for the form
// as a whole.
func fieldFor(msg string) string {
	for _, r := range fieldRules {
		if strings.HasPrefix(msg, r.prefix) {
			return r.field
		}
	}
	// "X has the wrong type: ..." from the API's JSON decoding.
	if name, _, ok := strings.Cut(msg, " has the wrong type"); ok {
		return fieldFor(name)
	}
	return ""
}

// form is a submitted form with its errors, by field.
type form struct {
	Values url.Values
	Errors map[string]string
	Error  string // about the whole form
}

func newForm(v url.Values) *form { return &form{Values: v, Errors: map[string]string{}} }

// Get returns a field's value.
func (f *form) Get(name string) string { return f.Values.Get(name) }

// Err returns a field's error.
func (f *form) Err(name string) string { return f.Errors[name] }

// Failed reports whether the form has any error.
func (f *form) Failed() bool { return len(f.Errors) > 0 || f.Error != "" }

// apiError files the API's error under its field.
func (f *form) apiError(res apiResult, fields ...string) {
	field := fieldFor(res.Message)
	for _, known := range fields {
		if field == known {
			f.Errors[field] = res.Message
			return
		}
	}
	f.Error = res.Message
}

// int reads a whole number field; empty is nil.
func (f *form) int(name, what string) *int64 {
	v := strings.TrimSpace(f.Get(name))
	if v == "" {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		f.Errors[name] = what + " must be a whole number."
		return nil
	}
	return &n
}

// float reads a number field; empty is nil.
func (f *form) float(name, what string) *float64 {
	v := strings.TrimSpace(f.Get(name))
	if v == "" {
		return nil
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		f.Errors[name] = what + " must be a number."
		return nil
	}
	return &n
}

// ---- create a job ----

type newBody struct {
	F         *form
	Templates []string
}

var createFields = []string{"jobId", "targets", "targetSelection", "document", "template", "parameters", "description",
	"rollout", "abort", "timeout", "retry", "scheduleStart", "scheduleEnd", "endBehavior"}

func (c *Console) newJobPage(w http.ResponseWriter, r *http.Request, s *session) {
	v := url.Values{"source": {"document"}, "targetSelection": {"SNAPSHOT"}, "document": {"{\n  \"operation\": \"\"\n}"}}
	if t := r.URL.Query().Get("template"); t != "" {
		v.Set("source", "template")
		v.Set("template", t)
	}
	c.render(w, r, http.StatusOK, "new", s, "Create a job", newBody{F: newForm(v), Templates: c.templates(r.Context())})
}

// templates lists the job template ids (the first few hundred).
func (c *Console) templates(ctx context.Context) []string {
	var ids []string
	page, err := c.opts.Store.ListJobTemplates(ctx, &store.PageInput{MaxResults: store.MaxListResults})
	if err != nil {
		return nil
	}
	for _, t := range page.Templates {
		ids = append(ids, t.JobTemplateID)
	}
	return ids
}

func (c *Console) createJob(w http.ResponseWriter, r *http.Request, s *session) {
	f := newForm(r.PostForm)
	id := strings.TrimSpace(f.Get("jobId"))
	req := map[string]any{}
	if targets := c.parseTargets(f.Get("targets")); len(targets) > 0 {
		req["targets"] = targets
	}
	if ts := f.Get("targetSelection"); ts != "" {
		req["targetSelection"] = ts
	}
	if d := strings.TrimSpace(f.Get("description")); d != "" {
		req["description"] = d
	}
	if f.Get("source") == "template" {
		if t := strings.TrimSpace(f.Get("template")); t != "" {
			req["jobTemplateArn"] = c.templateArn(t)
		}
		if params := parseParams(f); params != nil {
			req["documentParameters"] = params
		}
	} else if d := f.Get("document"); strings.TrimSpace(d) != "" {
		req["document"] = d
	}
	rollout := map[string]any{}
	if n := f.int("maximumPerMinute", "The maximum per minute"); n != nil {
		rollout["maximumPerMinute"] = *n
	}
	base, factor, count := f.int("expBase", "The base rate"), f.float("expFactor", "The increment factor"), f.int("expCount", "The number of things")
	if base != nil || factor != nil || count != nil {
		exp := map[string]any{}
		if base != nil {
			exp["baseRatePerMinute"] = *base
		}
		if factor != nil {
			exp["incrementFactor"] = *factor
		}
		crit := map[string]any{}
		if count != nil {
			if f.Get("expCriterion") == "succeeded" {
				crit["numberOfSucceededThings"] = *count
			} else {
				crit["numberOfNotifiedThings"] = *count
			}
		}
		exp["rateIncreaseCriteria"] = crit
		rollout["exponentialRate"] = exp
	}
	if len(rollout) > 0 {
		req["jobExecutionsRolloutConfig"] = rollout
	}
	if ft := f.Get("abortFailureType"); ft != "" {
		crit := map[string]any{"failureType": ft, "action": "CANCEL"}
		if p := f.float("abortThreshold", "The threshold"); p != nil {
			crit["thresholdPercentage"] = *p
		}
		if n := f.int("abortMin", "The minimum number of things"); n != nil {
			crit["minNumberOfExecutedThings"] = *n
		}
		req["abortConfig"] = map[string]any{"criteriaList": []any{crit}}
	}
	if n := f.int("inProgressTimeout", "The in-progress timeout"); n != nil {
		req["timeoutConfig"] = map[string]any{"inProgressTimeoutInMinutes": *n}
	}
	var retries []any
	for _, rt := range []struct{ field, kind string }{{"retryFailed", "FAILED"}, {"retryTimedOut", "TIMED_OUT"}} {
		if n := f.int(rt.field, "The number of retries"); n != nil {
			retries = append(retries, map[string]any{"failureType": rt.kind, "numberOfRetries": *n})
		}
	}
	if retries != nil {
		req["jobExecutionsRetryConfig"] = map[string]any{"criteriaList": retries}
	}
	sched := map[string]any{}
	for field, member := range map[string]string{"scheduleStart": "startTime", "scheduleEnd": "endTime", "endBehavior": "endBehavior"} {
		if v := strings.TrimSpace(f.Get(field)); v != "" {
			sched[member] = v
		}
	}
	if len(sched) > 0 {
		req["schedulingConfig"] = sched
	}
	if id == "" {
		f.Errors["jobId"] = "Give the job an id: 1-64 characters from a-z, A-Z, 0-9, _ and -."
	}
	if !f.Failed() {
		res := c.call(r.Context(), http.MethodPut, "/jobs/"+url.PathEscape(id), nil, req)
		if res.ok() {
			c.hub.changed()
			http.Redirect(w, r, Prefix+"jobs/"+url.PathEscape(id)+"?done=created", http.StatusSeeOther)
			return
		}
		f.apiError(res, createFields...)
		moveErrors(f)
	}
	c.render(w, r, http.StatusBadRequest, "new", s, "Create a job", newBody{F: f, Templates: c.templates(r.Context())})
}

// moveErrors shows the errors of grouped settings on the input that holds
// them.
func moveErrors(f *form) {
	for group, field := range map[string]string{"rollout": "maximumPerMinute", "abort": "abortFailureType", "timeout": "inProgressTimeout", "retry": "retryFailed"} {
		if msg, ok := f.Errors[group]; ok {
			delete(f.Errors, group)
			f.Errors[field] = msg
		}
	}
	if msg, ok := f.Errors["rollout"]; ok && strings.Contains(msg, "exponentialRate") {
		f.Errors["expBase"] = msg
	}
	if msg, ok := f.Errors["maximumPerMinute"]; ok && strings.Contains(msg, "exponentialRate") {
		delete(f.Errors, "maximumPerMinute")
		f.Errors["expBase"] = msg
	}
}

// parseTargets turns the targets field into ARNs: one target per line or
// comma, each an ARN, thing/NAME, thinggroup/NAME (or group/NAME), or a
// bare thing name. The API checks them.
func (c *Console) parseTargets(text string) []string {
	var out []string
	for _, t := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ',' || r == '\r' }) {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
			continue
		case strings.HasPrefix(t, "arn:"):
			out = append(out, t)
		case strings.HasPrefix(t, "thinggroup/"), strings.HasPrefix(t, "group/"):
			_, name, _ := strings.Cut(t, "/")
			out = append(out, c.targetArn("thinggroup", name))
		case strings.HasPrefix(t, "thing/"):
			out = append(out, c.targetArn("thing", strings.TrimPrefix(t, "thing/")))
		default:
			out = append(out, c.targetArn("thing", t))
		}
	}
	return out
}

// parseParams reads key=value lines.
func parseParams(f *form) map[string]string {
	var params map[string]string
	for _, line := range strings.Split(f.Get("parameters"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			f.Errors["parameters"] = "Write each parameter as name=value on a line of its own."
			return nil
		}
		if params == nil {
			params = map[string]string{}
		}
		params[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return params
}

// ---- actions on a job ----

type confirmBody struct {
	Job    *store.Job
	Action string
	F      *form
}

var actions = map[string]string{"cancel": "Cancel the job", "delete": "Delete the job", "rollout": "Change the rollout rate"}

func (c *Console) confirmPage(w http.ResponseWriter, r *http.Request, s *session) {
	action := r.PathValue("action")
	if _, ok := actions[action]; !ok {
		c.errorPage(w, r, s, http.StatusNotFound, "There is no console page at "+r.URL.Path+".")
		return
	}
	j, err := c.opts.Store.DescribeJob(r.Context(), r.PathValue("jobId"))
	if err != nil {
		c.storeError(w, r, s, err, "job "+r.PathValue("jobId"))
		return
	}
	v := url.Values{}
	if rc := j.RolloutConfig; rc != nil && rc.MaximumPerMinute != nil {
		v.Set("maximumPerMinute", strconv.FormatInt(*rc.MaximumPerMinute, 10))
	}
	c.render(w, r, http.StatusOK, "confirm", s, actions[action]+" "+j.JobID, confirmBody{Job: j, Action: action, F: newForm(v)})
}

func (c *Console) jobAction(w http.ResponseWriter, r *http.Request, s *session) {
	action, id := r.PathValue("action"), r.PathValue("jobId")
	f := newForm(r.PostForm)
	path := "/jobs/" + url.PathEscape(id)
	force := url.Values{}
	if f.Get("force") == "true" {
		force.Set("force", "true")
	}
	var res apiResult
	var fields []string
	done := Prefix + "jobs/" + url.PathEscape(id)
	switch action {
	case "cancel":
		body := map[string]any{}
		if v := strings.TrimSpace(f.Get("reasonCode")); v != "" {
			body["reasonCode"] = v
		}
		if v := strings.TrimSpace(f.Get("comment")); v != "" {
			body["comment"] = v
		}
		res, fields, done = c.call(r.Context(), http.MethodPut, path+"/cancel", force, body), []string{"reasonCode", "comment"}, done+"?done=canceled"
	case "delete":
		res, done = c.call(r.Context(), http.MethodDelete, path, force, nil), Prefix+"?done=deleted"
	case "rollout":
		n := f.int("maximumPerMinute", "The maximum per minute")
		if n == nil && !f.Failed() {
			f.Errors["maximumPerMinute"] = "Give the most things a minute that may be given the job."
		}
		if f.Failed() {
			break
		}
		res, fields, done = c.call(r.Context(), http.MethodPatch, path, nil, map[string]any{
			"jobExecutionsRolloutConfig": map[string]any{"maximumPerMinute": *n},
		}), []string{"rollout"}, done+"?done=rollout"
	default:
		c.errorPage(w, r, s, http.StatusNotFound, "There is no console action "+action+".")
		return
	}
	if !f.Failed() && res.ok() {
		c.hub.changed()
		http.Redirect(w, r, done, http.StatusSeeOther)
		return
	}
	if !f.Failed() {
		f.apiError(res, fields...)
		if msg, ok := f.Errors["rollout"]; ok {
			delete(f.Errors, "rollout")
			f.Errors["maximumPerMinute"] = msg
		}
	}
	j, err := c.opts.Store.DescribeJob(r.Context(), id)
	if err != nil {
		c.storeError(w, r, s, err, "job "+id)
		return
	}
	status := res.Status
	if status == 0 || status == http.StatusOK {
		status = http.StatusBadRequest
	}
	c.render(w, r, status, "confirm", s, actions[action]+" "+id, confirmBody{Job: j, Action: action, F: f})
}

// ---- completion of targets ----

// complete answers the create form's target completion: up to 20 things
// and groups whose names start with q, as "thing/NAME" and
// "thinggroup/NAME".
func (c *Console) complete(w http.ResponseWriter, r *http.Request, _ *session) {
	q := r.URL.Query().Get("q")
	q = strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(q, "thinggroup/"), "group/"), "thing/")
	const limit = 20
	var out []string
	groups, err := c.opts.Store.ListThingGroups(r.Context(), &store.ListThingGroupsInput{NamePrefixFilter: q, PageInput: store.PageInput{MaxResults: limit}})
	if err == nil {
		for _, g := range groups.Groups {
			out = append(out, "thinggroup/"+g.Name)
		}
	}
	in := &store.PageInput{MaxResults: store.MaxListResults}
	for range 8 { // the first 2,000 registered things at most
		page, err := c.opts.Store.ListThings(r.Context(), in)
		if err != nil {
			break
		}
		for _, t := range page.Things {
			if strings.HasPrefix(t.ThingName, q) && len(out) < 2*limit {
				out = append(out, "thing/"+t.ThingName)
			}
		}
		if in.NextToken = page.NextToken; in.NextToken == "" || len(out) >= 2*limit {
			break
		}
	}
	if out == nil {
		out = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}
