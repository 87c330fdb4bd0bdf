package store

import (
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jobsbroker/jobsbroker/store/schedule"
)

// TargetKind says whether a job target names a thing or a thing group.
type TargetKind uint8

// The kinds of job targets.
const (
	TargetThing TargetKind = iota + 1
	TargetThingGroup
)

// ParseTargetARN splits a job target ARN,
// arn:{partition}:iot:{region}:{account}:thing/{name} or
// ...:thinggroup/{name}. Any partition, region and account are accepted.
func ParseTargetARN(arn string) (TargetKind, string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "iot" || parts[3] == "" || parts[4] == "" {
		return 0, "", Errorf(ErrInvalidRequest, "target %q is not an AWS IoT thing or thing group ARN", arn)
	}
	resource, name, ok := strings.Cut(parts[5], "/")
	if !ok {
		return 0, "", Errorf(ErrInvalidRequest, "target %q is not an AWS IoT thing or thing group ARN", arn)
	}
	switch resource {
	case "thing":
		if err := ValidateThingName(name); err != nil {
			return 0, "", Errorf(ErrInvalidRequest, "target %q: %s", arn, err)
		}
		return TargetThing, name, nil
	case "thinggroup":
		if err := ValidateThingGroupName(name); err != nil {
			return 0, "", Errorf(ErrInvalidRequest, "target %q: %s", arn, err)
		}
		return TargetThingGroup, name, nil
	}
	return 0, "", Errorf(ErrInvalidRequest, "target %q is not an AWS IoT thing or thing group ARN", arn)
}

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
