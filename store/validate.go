package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jobsbroker/jobsbroker/store/schedule"
	"github.com/jobsbroker/jobsbroker/topics"
)

// Field limits of AWS IoT Jobs (PROTOCOL.md §1.1, §9, §13).
const (
	MaxStatusDetailsKeyLength   = 128
	MaxStatusDetailsValueLength = 1024
	// MaxCancelStatusDetails is the pair limit CancelJobExecution documents.
	MaxCancelStatusDetails = 10
	MinStepTimeoutMinutes  = 1
	MaxStepTimeoutMinutes  = 10080
	// CancelStepTimer is the stepTimeoutInMinutes value that stops a step timer.
	CancelStepTimer         = -1
	MaxDocumentLength       = 32768
	MaxDocumentSourceLength = 1350
	MaxDescriptionLength    = 2028
	MaxCommentLength        = 2028
	MaxReasonCodeLength     = 128
	MaxListResults          = 250
)

// ValidateThingName checks a thing name against the AWS pattern.
func ValidateThingName(name string) error {
	if !topics.ValidThingName(name) {
		return Errorf(ErrInvalidRequest, "thingName %q must be 1-128 characters from [a-zA-Z0-9:_-]", name)
	}
	return nil
}

// ValidateJobID checks a job id against the AWS pattern.
func ValidateJobID(id string) error {
	if !topics.ValidJobID(id) {
		return Errorf(ErrInvalidRequest, "jobId %q must be 1-64 characters from [a-zA-Z0-9_-]", id)
	}
	return nil
}

// ValidateStatusDetails checks the statusDetails map of a request (see
// validateStatusDetails in statusdetails.go for the rules).
func ValidateStatusDetails(details map[string]string) error {
	return validateStatusDetails(details)
}

func validDetailsKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ValidateStepTimeout checks stepTimeoutInMinutes: 1-10080, or -1 to stop
// the step timer.
func ValidateStepTimeout(minutes *int64) error {
	if minutes == nil {
		return nil
	}
	m := *minutes
	if m == CancelStepTimer || (m >= MinStepTimeoutMinutes && m <= MaxStepTimeoutMinutes) {
		return nil
	}
	return Errorf(ErrInvalidRequest, "stepTimeoutInMinutes %d must be between 1 and 10080, or -1 to cancel the step timer", m)
}

// ValidateUpdate checks the shape of an UpdateJobExecution request before
// any state is read.
func ValidateUpdate(in *UpdateExecutionInput) error {
	if err := ValidateThingName(in.ThingName); err != nil {
		return err
	}
	if err := ValidateJobID(in.JobID); err != nil {
		return err
	}
	if in.Status == "" {
		return Errorf(ErrInvalidRequest, "status is required")
	}
	if !in.Status.Valid() {
		return Errorf(ErrInvalidRequest, "status %q is not a job execution status", in.Status)
	}
	if !in.Status.DeviceSettable() {
		return Errorf(ErrInvalidRequest, "a device may set status IN_PROGRESS, SUCCEEDED, FAILED or REJECTED, not %s", in.Status)
	}
	if in.ExpectedVersion != nil && *in.ExpectedVersion < 0 {
		return Errorf(ErrInvalidRequest, "expectedVersion must not be negative")
	}
	if in.ExecutionNumber != nil && *in.ExecutionNumber < 0 {
		return Errorf(ErrInvalidRequest, "executionNumber must not be negative")
	}
	if err := ValidateStatusDetails(in.StatusDetails); err != nil {
		return err
	}
	return ValidateStepTimeout(in.StepTimeoutInMinutes)
}

// ValidateStartNext checks a StartNextPendingJobExecution request.
func ValidateStartNext(in *StartNextInput) error {
	if err := ValidateThingName(in.ThingName); err != nil {
		return err
	}
	if err := ValidateStatusDetails(in.StatusDetails); err != nil {
		return err
	}
	return ValidateStepTimeout(in.StepTimeoutInMinutes)
}

// ValidateDescribe checks a DescribeJobExecution request; jobID may be
// "$next" when allowNext is set (the device APIs).
func ValidateDescribe(in *DescribeExecutionInput, allowNext bool) error {
	if err := ValidateThingName(in.ThingName); err != nil {
		return err
	}
	if !(allowNext && in.JobID == topics.Next) {
		if err := ValidateJobID(in.JobID); err != nil {
			return err
		}
	}
	if in.ExecutionNumber != nil && *in.ExecutionNumber < 0 {
		return Errorf(ErrInvalidRequest, "executionNumber must not be negative")
	}
	return nil
}

// ValidateDocument checks a job document: at most 32,768 characters of JSON
// whose top level is an object, because MQTT clients receive it embedded as
// an object.
func ValidateDocument(doc string) error {
	if n := utf8.RuneCountInString(doc); n > MaxDocumentLength {
		return Errorf(ErrInvalidRequest, "document has %d characters; the limit is %d", n, MaxDocumentLength)
	}
	if err := validateDocumentBytes(doc); err != nil {
		return err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &obj); err != nil || obj == nil {
		return Errorf(ErrInvalidRequest, "document must be a JSON object: %s", jsonProblem(err))
	}
	return nil
}

func jsonProblem(err error) string {
	if err == nil {
		return "got null"
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("got a JSON %s", typeErr.Value)
	}
	return err.Error()
}

// ValidateAttributes checks thing and group attributes against AWS's
// patterns: names of 1-128 and values of up to 800 characters from
// [a-zA-Z0-9_.,@/:#-], and at most max of them.
func ValidateAttributes(attrs map[string]string, max int) error {
	if len(attrs) > max {
		return Errorf(ErrInvalidRequest, "at most %d attributes are allowed", max)
	}
	for k, v := range attrs {
		if k == "" || len(k) > 128 || !attributeText(k) {
			return Errorf(ErrInvalidRequest, "attribute name %q must be 1-128 characters from [a-zA-Z0-9_.,@/:#-]", truncate(k))
		}
		if len(v) > 800 || !attributeText(v) {
			return Errorf(ErrInvalidRequest, "attribute %q must have a value of at most 800 characters from [a-zA-Z0-9_.,@/:#-]", k)
		}
	}
	return nil
}

func attributeText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.,@/:#-", c) >= 0) {
			return false
		}
	}
	return true
}

// ValidateDescription checks a description (job, group, template).
func ValidateDescription(s string) error { return validateText("description", s, MaxDescriptionLength) }

// ValidateThingGroupName checks a thing group name: 1-128 characters from
// [a-zA-Z0-9:_-].
func ValidateThingGroupName(name string) error {
	if err := ValidateThingName(name); err != nil {
		return Errorf(ErrInvalidRequest, "thingGroupName %q must be 1-128 characters from [a-zA-Z0-9:_-]", name)
	}
	return nil
}

// ValidateCreateJob checks every field of a CreateJob request against the
// ranges of the AWS IoT API (PROTOCOL.md §11.2 and §13).
func ValidateCreateJob(in *CreateJobInput) error {
	j := &in.Job
	if err := ValidateJobID(j.JobID); err != nil {
		return err
	}
	if len(j.Targets) == 0 {
		return Errorf(ErrInvalidRequest, "targets must list at least one thing or thing group ARN")
	}
	for _, t := range j.Targets {
		if _, _, err := ParseTargetARN(t); err != nil {
			return err
		}
	}
	hasDoc, hasSource := in.Document != "", j.DocumentSource != ""
	switch {
	case hasDoc && hasSource:
		return Errorf(ErrInvalidRequest, "specify either document or documentSource, not both")
	case (hasDoc || hasSource) && j.JobTemplateArn != "" && in.Template == nil:
		return Errorf(ErrInvalidRequest, "a job created from a jobTemplateArn takes the template's document; do not pass one")
	case in.Template != nil && (!hasDoc || hasSource || j.JobTemplateArn == ""):
		return Errorf(ErrInvalidRequest, "a job from a resolved template needs its jobTemplateArn and substituted document")
	case !hasDoc && !hasSource && j.JobTemplateArn == "":
		return Errorf(ErrInvalidRequest, "a job needs a document, a documentSource or a jobTemplateArn")
	case hasSource:
		return Errorf(ErrInvalidRequest, "documentSource (an S3 URL) is not supported by this broker; pass the document itself")
	}
	if hasDoc {
		if err := ValidateDocument(in.Document); err != nil {
			return err
		}
	}
	if err := validateText("description", j.Description, MaxDescriptionLength); err != nil {
		return err
	}
	switch j.TargetSelection {
	case "", Snapshot, Continuous:
	default:
		return Errorf(ErrInvalidRequest, "targetSelection %q must be SNAPSHOT or CONTINUOUS", j.TargetSelection)
	}
	return ValidateJobConfigs(j)
}

// ValidateJobConfigs checks the optional configuration blocks a job (or an
// UpdateJob request, or a job template) may carry.
func ValidateJobConfigs(j *Job) error {
	if c := j.PresignedURLConfig; c != nil {
		if n := len(c.RoleArn); n != 0 && (n < 20 || n > 2048) {
			return Errorf(ErrInvalidRequest, "presignedUrlConfig.roleArn must have 20-2048 characters")
		}
		if c.ExpiresInSec != nil && (*c.ExpiresInSec < 60 || *c.ExpiresInSec > 3600) {
			return Errorf(ErrInvalidRequest, "presignedUrlConfig.expiresInSec %d must be between 60 and 3600", *c.ExpiresInSec)
		}
	}
	if err := validateRollout(j.RolloutConfig); err != nil {
		return err
	}
	if err := validateAbort(j.AbortConfig); err != nil {
		return err
	}
	if c := j.TimeoutConfig; c != nil && c.InProgressTimeoutInMinutes != nil {
		if m := *c.InProgressTimeoutInMinutes; m < 1 || m > MaxStepTimeoutMinutes {
			return Errorf(ErrInvalidRequest, "timeoutConfig.inProgressTimeoutInMinutes %d must be between 1 and 10080", m)
		}
	}
	if err := validateRetry(j.RetryConfig, j.TimeoutConfig); err != nil {
		return err
	}
	for k, v := range j.DocumentParameters {
		if k == "" || len(k) > 128 || !validDetailsKey(k) {
			return Errorf(ErrInvalidRequest, "documentParameters key %q must be 1-128 characters from [a-zA-Z0-9:_-]", truncate(k))
		}
		if n := utf8.RuneCountInString(v); n == 0 || n > 512 {
			return Errorf(ErrInvalidRequest, "documentParameters value of %q must have 1-512 characters", k)
		}
		if strings.ContainsFunc(v, func(r rune) bool { return unicode.Is(unicode.C, r) || r == utf8.RuneError }) {
			return Errorf(ErrInvalidRequest, "documentParameters value of %q may not hold control or format characters", k)
		}
	}
	if len(j.DestinationPackageVersions) > 25 {
		return Errorf(ErrInvalidRequest, "destinationPackageVersions holds at most 25 ARNs")
	}
	for _, t := range j.Tags {
		if t.Key == "" || utf8.RuneCountInString(t.Key) > 128 || utf8.RuneCountInString(t.Value) > 256 {
			return Errorf(ErrInvalidRequest, "tag keys must have 1-128 characters and values at most 256")
		}
	}
	return nil
}

func validateRollout(c *RolloutConfig) error {
	if c == nil {
		return nil
	}
	if c.MaximumPerMinute != nil && *c.MaximumPerMinute < 1 {
		return Errorf(ErrInvalidRequest, "jobExecutionsRolloutConfig.maximumPerMinute %d must be at least 1", *c.MaximumPerMinute)
	}
	r := c.ExponentialRate
	if r == nil {
		return nil
	}
	if r.BaseRatePerMinute < 1 || r.BaseRatePerMinute > 1000 {
		return Errorf(ErrInvalidRequest, "exponentialRate.baseRatePerMinute %d must be between 1 and 1000", r.BaseRatePerMinute)
	}
	if r.IncrementFactor < 1.1 || r.IncrementFactor > 5 || !hasDecimals(r.IncrementFactor, 1) {
		return Errorf(ErrInvalidRequest, "exponentialRate.incrementFactor %v must be between 1.1 and 5 with at most one decimal", r.IncrementFactor)
	}
	crit := r.RateIncreaseCriteria
	notified, succeeded := crit.NumberOfNotifiedThings, crit.NumberOfSucceededThings
	if (notified == nil) == (succeeded == nil) {
		return Errorf(ErrInvalidRequest, "exponentialRate.rateIncreaseCriteria needs exactly one of numberOfNotifiedThings and numberOfSucceededThings")
	}
	if (notified != nil && *notified < 1) || (succeeded != nil && *succeeded < 1) {
		return Errorf(ErrInvalidRequest, "exponentialRate.rateIncreaseCriteria values must be at least 1")
	}
	return nil
}

func validateAbort(c *AbortConfig) error {
	if c == nil {
		return nil
	}
	if len(c.CriteriaList) == 0 {
		return Errorf(ErrInvalidRequest, "abortConfig.criteriaList must hold at least one criterion")
	}
	for _, a := range c.CriteriaList {
		switch a.FailureType {
		case "FAILED", "REJECTED", "TIMED_OUT", "ALL":
		default:
			return Errorf(ErrInvalidRequest, "abortConfig failureType %q must be FAILED, REJECTED, TIMED_OUT or ALL", a.FailureType)
		}
		if a.Action != "CANCEL" {
			return Errorf(ErrInvalidRequest, "abortConfig action %q must be CANCEL", a.Action)
		}
		if a.ThresholdPercentage <= 0 || a.ThresholdPercentage > 100 || !hasDecimals(a.ThresholdPercentage, 2) {
			return Errorf(ErrInvalidRequest, "abortConfig thresholdPercentage %v must be above 0 and at most 100, with at most two decimals", a.ThresholdPercentage)
		}
		if a.MinNumberOfExecutedThings < 1 {
			return Errorf(ErrInvalidRequest, "abortConfig minNumberOfExecutedThings must be at least 1")
		}
	}
	return nil
}

func validateRetry(c *RetryConfig, timeout *TimeoutConfig) error {
	if c == nil {
		return nil
	}
	if n := len(c.CriteriaList); n < 1 || n > 2 {
		return Errorf(ErrInvalidRequest, "jobExecutionsRetryConfig.criteriaList must hold 1 or 2 criteria")
	}
	var total int64
	seen := map[string]bool{}
	for _, r := range c.CriteriaList {
		switch r.FailureType {
		case "FAILED", "TIMED_OUT", "ALL":
		default:
			return Errorf(ErrInvalidRequest, "jobExecutionsRetryConfig failureType %q must be FAILED, TIMED_OUT or ALL", r.FailureType)
		}
		if seen[r.FailureType] {
			return Errorf(ErrInvalidRequest, "jobExecutionsRetryConfig lists failureType %s twice", r.FailureType)
		}
		seen[r.FailureType] = true
		if r.NumberOfRetries < 0 || r.NumberOfRetries > 10 {
			return Errorf(ErrInvalidRequest, "jobExecutionsRetryConfig numberOfRetries %d must be between 0 and 10", r.NumberOfRetries)
		}
		total += r.NumberOfRetries
	}
	if total > 10 {
		return Errorf(ErrInvalidRequest, "jobExecutionsRetryConfig allows at most 10 retries in total, got %d", total)
	}
	return nil
}

// ValidateReasonCode checks a CancelJob reasonCode: at most 128 characters
// from [A-Z0-9_].
func ValidateReasonCode(code string) error {
	if len(code) > MaxReasonCodeLength {
		return Errorf(ErrInvalidRequest, "reasonCode must have at most 128 characters")
	}
	for _, r := range code {
		if !(unicode.IsUpper(r) || unicode.IsDigit(r) || r == '_') {
			return Errorf(ErrInvalidRequest, "reasonCode %q may only hold upper-case letters, digits and _", code)
		}
	}
	return nil
}

// ValidateComment checks a CancelJob or AssociateTargetsWithJob comment.
func ValidateComment(comment string) error {
	return validateText("comment", comment, MaxCommentLength)
}

func validateText(field, s string, max int) error {
	if n := utf8.RuneCountInString(s); n > max {
		return Errorf(ErrInvalidRequest, "%s has %d characters; the limit is %d", field, n, max)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return Errorf(ErrInvalidRequest, "%s must not contain control characters", field)
		}
	}
	return nil
}

// hasDecimals reports whether v has at most n decimal places.
func hasDecimals(v float64, n int) bool {
	scaled := v * math.Pow10(n)
	return math.Abs(scaled-math.Round(scaled)) < 1e-6
}

// ValidateSchedule checks a schedulingConfig at job creation time now
// (PROTOCOL.md §11.2).
func ValidateSchedule(sc *SchedulingConfig, now time.Time) error {
	if sc == nil {
		return nil
	}
	specs := make([]schedule.WindowSpec, len(sc.MaintenanceWindows))
	for i, m := range sc.MaintenanceWindows {
		specs[i] = schedule.WindowSpec{StartTime: m.StartTime, DurationInMinutes: m.DurationInMinutes}
	}
	if err := schedule.Validate(sc.StartTime, sc.EndTime, sc.EndBehavior, specs, now); err != nil {
		return Errorf(ErrInvalidRequest, "%s", err)
	}
	return nil
}

// ValidateWindows checks maintenance windows on their own (job templates).
func ValidateWindows(ws []MaintenanceWindow) error {
	for _, m := range ws {
		if _, err := schedule.ParseWindow(m.StartTime, m.DurationInMinutes); err != nil {
			return Errorf(ErrInvalidRequest, "maintenanceWindows: %s", err)
		}
	}
	return nil
}

// ValidateMembership checks the names of a thing group membership.
func ValidateMembership(in *MembershipInput) error {
	if err := ValidateThingGroupName(in.ThingGroupName); err != nil {
		return err
	}
	return ValidateThingName(in.ThingName)
}

// ValidateCancelExecution checks a CancelJobExecution request before
// the store is read.
func ValidateCancelExecution(in *CancelExecutionInput) error {
	if err := ValidateThingName(in.ThingName); err != nil {
		return err
	}
	if err := ValidateJobID(in.JobID); err != nil {
		return err
	}
	return ValidateStatusDetails(in.StatusDetails)
}

// ValidateCreateThing checks a CreateThing request before the store is
// read.
func ValidateCreateThing(in *CreateThingInput) error {
	if err := ValidateThingName(in.ThingName); err != nil {
		return err
	}
	if err := ValidateAttributes(in.Attributes, 3); err != nil {
		return err
	}
	if in.ThingTypeName != "" {
		// Thing types are not modeled; none exists (as AWS says for a type
		// that was never created).
		return Errorf(ErrNotFound, "thing type %s does not exist", in.ThingTypeName)
	}
	return nil
}

// ValidateUpdateJob checks an UpdateJob request before the store is
// read.
func ValidateUpdateJob(in *UpdateJobInput) error {
	if err := ValidateJobID(in.JobID); err != nil {
		return err
	}
	if in.Description != nil {
		if err := ValidateDescription(*in.Description); err != nil {
			return err
		}
	}
	probe := &Job{PresignedURLConfig: in.PresignedURLConfig, RolloutConfig: in.RolloutConfig, AbortConfig: in.AbortConfig,
		TimeoutConfig: in.TimeoutConfig, RetryConfig: in.RetryConfig}
	return ValidateJobConfigs(probe)
}

// ValidateTemplate checks a CreateJobTemplate request.
func ValidateTemplate(in *CreateJobTemplateInput) error {
	t := &in.Template
	if err := ValidateJobID(t.JobTemplateID); err != nil {
		return Errorf(ErrInvalidRequest, "jobTemplateId %q must be 1-64 characters from [a-zA-Z0-9_-]", t.JobTemplateID)
	}
	if t.Description == "" {
		return Errorf(ErrInvalidRequest, "description is required")
	}
	if err := ValidateDescription(t.Description); err != nil {
		return err
	}
	sources := 0
	for _, set := range []bool{t.Document != "", t.DocumentSource != "", in.JobID != ""} {
		if set {
			sources++
		}
	}
	switch {
	case sources == 0:
		return Errorf(ErrInvalidRequest, "a job template needs a document or a jobArn to copy")
	case sources > 1:
		return Errorf(ErrInvalidRequest, "specify one of document, documentSource and jobArn")
	case t.DocumentSource != "":
		return Errorf(ErrInvalidRequest, "documentSource (an S3 URL) is not supported by this broker; pass the document itself")
	}
	if t.Document != "" {
		if err := ValidateDocument(t.Document); err != nil {
			// A template document may hold parameter placeholders inside
			// strings, which keep it valid JSON.
			return err
		}
	}
	if in.JobID != "" {
		if err := ValidateJobID(in.JobID); err != nil {
			return err
		}
	}
	job := &Job{PresignedURLConfig: t.PresignedURLConfig, RolloutConfig: t.RolloutConfig, AbortConfig: t.AbortConfig,
		TimeoutConfig: t.TimeoutConfig, RetryConfig: t.RetryConfig, DestinationPackageVersions: t.DestinationPackageVersions, Tags: t.Tags}
	if err := ValidateJobConfigs(job); err != nil {
		return err
	}
	return ValidateWindows(t.MaintenanceWindows)
}

// ValidateCancelJob checks a CancelJob request before the store is read.
func ValidateCancelJob(in *CancelJobInput) error {
	if err := ValidateJobID(in.JobID); err != nil {
		return err
	}
	if in.ReasonCode != nil {
		if err := ValidateReasonCode(*in.ReasonCode); err != nil {
			return err
		}
	}
	if in.Comment != nil {
		return ValidateComment(*in.Comment)
	}
	return nil
}

// ValidateAssociateTargets checks an AssociateTargetsWithJob request
// before the store is read.
func ValidateAssociateTargets(in *AssociateTargetsInput) error {
	if err := ValidateJobID(in.JobID); err != nil {
		return err
	}
	if len(in.Targets) == 0 {
		return Errorf(ErrInvalidRequest, "targets must list at least one thing or thing group ARN")
	}
	for _, t := range in.Targets {
		if _, _, err := ParseTargetARN(t); err != nil {
			return err
		}
	}
	if in.Comment != nil {
		return ValidateComment(*in.Comment)
	}
	return nil
}

// ValidateDeleteExecution checks a DeleteJobExecution request before the
// store is read.
func ValidateDeleteExecution(in *DeleteExecutionInput) error {
	if err := ValidateThingName(in.ThingName); err != nil {
		return err
	}
	return ValidateJobID(in.JobID)
}

// ValidateStatusFilter checks the status a list of executions is filtered
// by ("" for none).
func ValidateStatusFilter(s ExecutionStatus) error {
	if s != "" && !s.Valid() {
		return Errorf(ErrInvalidRequest, "status %q is not a job execution status", s)
	}
	return nil
}

// ValidateCreateThingGroup checks a CreateThingGroup request before the
// store is read.
func ValidateCreateThingGroup(in *CreateThingGroupInput) error {
	if err := ValidateThingGroupName(in.Name); err != nil {
		return err
	}
	if in.ParentName != "" {
		if err := ValidateThingGroupName(in.ParentName); err != nil {
			return err
		}
	}
	if err := ValidateAttributes(in.Attributes, 50); err != nil {
		return err
	}
	return ValidateDescription(in.Description)
}
