package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

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
