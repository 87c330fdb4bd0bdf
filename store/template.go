package store

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"
)

// JobTemplate is a custom job template: a document and the configuration
// that CreateJob copies when given the template's ARN.
type JobTemplate struct {
	JobTemplateID              string              `json:"jobTemplateId"`
	Description                string              `json:"description"`
	Document                   string              `json:"document,omitempty"`
	DocumentSource             string              `json:"documentSource,omitempty"`
	PresignedURLConfig         *PresignedURLConfig `json:"presignedUrlConfig,omitempty"`
	RolloutConfig              *RolloutConfig      `json:"jobExecutionsRolloutConfig,omitempty"`
	AbortConfig                *AbortConfig        `json:"abortConfig,omitempty"`
	TimeoutConfig              *TimeoutConfig      `json:"timeoutConfig,omitempty"`
	RetryConfig                *RetryConfig        `json:"jobExecutionsRetryConfig,omitempty"`
	MaintenanceWindows         []MaintenanceWindow `json:"maintenanceWindows,omitempty"`
	DestinationPackageVersions []string            `json:"destinationPackageVersions,omitempty"`
	Tags                       []Tag               `json:"tags,omitempty"`
	CreatedAt                  time.Time           `json:"createdAt"`
}

// CreateJobTemplateInput is a CreateJobTemplate request: either Template
// carries a document, or JobID names a job whose document and
// configuration are copied (fields set in Template win).
type CreateJobTemplateInput struct {
	Template JobTemplate
	JobID    string
}

// TemplatesPage is a page of job templates.
type TemplatesPage struct {
	Templates []*JobTemplate
	NextToken string
}

// UpdateJobInput is an UpdateJob request; nil fields are left unchanged.
type UpdateJobInput struct {
	JobID              string
	Description        *string
	PresignedURLConfig *PresignedURLConfig
	RolloutConfig      *RolloutConfig
	AbortConfig        *AbortConfig
	TimeoutConfig      *TimeoutConfig
	RetryConfig        *RetryConfig
}

// AssociateTargetsInput is an AssociateTargetsWithJob request.
type AssociateTargetsInput struct {
	JobID   string
	Targets []string
	Comment *string
}

// MaxJobTargets is how many targets a continuous job may have in all.
const MaxJobTargets = 100

// ParseTemplateARN returns the template id of a job template ARN,
// arn:{partition}:iot:{region}:{account}:jobtemplate/{id}.
func ParseTemplateARN(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iot" || !strings.HasPrefix(parts[5], "jobtemplate/") {
		return "", Errorf(ErrInvalidRequest, "jobTemplateArn %q is not a job template ARN", arn)
	}
	id := strings.TrimPrefix(parts[5], "jobtemplate/")
	if err := ValidateJobID(id); err != nil {
		return "", Errorf(ErrInvalidRequest, "jobTemplateArn %q: the template id must be 1-64 characters from [a-zA-Z0-9_-]", arn)
	}
	return id, nil
}

// ApplyTemplate fills a job created from a template with the template's
// configuration, where the request gave none.
func ApplyTemplate(job *Job, t *JobTemplate) {
	if job.Description == "" {
		job.Description = t.Description
	}
	if job.PresignedURLConfig == nil {
		job.PresignedURLConfig = t.PresignedURLConfig
	}
	if job.RolloutConfig == nil {
		job.RolloutConfig = t.RolloutConfig
	}
	if job.AbortConfig == nil {
		job.AbortConfig = t.AbortConfig
	}
	if job.TimeoutConfig == nil {
		job.TimeoutConfig = t.TimeoutConfig
	}
	if job.RetryConfig == nil {
		job.RetryConfig = t.RetryConfig
	}
	if len(t.MaintenanceWindows) > 0 && (job.SchedulingConfig == nil || len(job.SchedulingConfig.MaintenanceWindows) == 0) {
		if job.SchedulingConfig == nil {
			job.SchedulingConfig = &SchedulingConfig{}
		}
		job.SchedulingConfig.MaintenanceWindows = t.MaintenanceWindows
	}
	if len(job.DestinationPackageVersions) == 0 {
		job.DestinationPackageVersions = t.DestinationPackageVersions
	}
}

// parameterRef matches a document parameter placeholder,
// ${aws:iot:parameter:name}.
var parameterRef = regexp.MustCompile(`\$\{aws:iot:parameter:([a-zA-Z0-9:_-]+)\}`)

// SubstituteParameters replaces every ${aws:iot:parameter:name} in a
// template document with documentParameters[name]. A placeholder without a
// value, or a parameter the document does not use, is an invalid request.
// Values are inserted as JSON string contents, escaped.
func SubstituteParameters(doc string, params map[string]string) (string, error) {
	used := map[string]bool{}
	var missing []string
	out := parameterRef.ReplaceAllStringFunc(doc, func(ref string) string {
		name := parameterRef.FindStringSubmatch(ref)[1]
		v, ok := params[name]
		if !ok {
			missing = append(missing, name)
			return ref
		}
		used[name] = true
		b, _ := json.Marshal(v)
		return string(b[1 : len(b)-1])
	})
	if len(missing) > 0 {
		return "", Errorf(ErrInvalidRequest, "documentParameters lacks %s, which the template's document uses", strings.Join(missing, ", "))
	}
	for name := range params {
		if !used[name] {
			return "", Errorf(ErrInvalidRequest, "documentParameters names %s, which the template's document does not use", name)
		}
	}
	return out, nil
}

// FillTemplate copies into t the configuration of from that t does not
// set itself (a template created from another job or template).
func FillTemplate(t, from *JobTemplate) {
	if t.PresignedURLConfig == nil {
		t.PresignedURLConfig = from.PresignedURLConfig
	}
	if t.RolloutConfig == nil {
		t.RolloutConfig = from.RolloutConfig
	}
	if t.AbortConfig == nil {
		t.AbortConfig = from.AbortConfig
	}
	if t.TimeoutConfig == nil {
		t.TimeoutConfig = from.TimeoutConfig
	}
	if t.RetryConfig == nil {
		t.RetryConfig = from.RetryConfig
	}
	if len(t.MaintenanceWindows) == 0 {
		t.MaintenanceWindows = from.MaintenanceWindows
	}
	if len(t.DestinationPackageVersions) == 0 {
		t.DestinationPackageVersions = from.DestinationPackageVersions
	}
}
