package controlplane

import (
	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/store"
)

// Wire shapes of the registry, job template, UpdateJob,
// AssociateTargetsWithJob and event-configuration operations of the AWS
// IoT control plane (2015-05-28), with the member names the AWS SDKs send
// and read.

// wireAttributePayload is AttributePayload. merge only matters to
// UpdateThing, which the broker does not serve.
type wireAttributePayload struct {
	Attributes map[string]string `json:"attributes,omitempty"`
	Merge      bool              `json:"merge,omitempty"`
}

type createThingRequest struct {
	ThingTypeName    *string               `json:"thingTypeName"`
	AttributePayload *wireAttributePayload `json:"attributePayload"`
	BillingGroupName *string               `json:"billingGroupName"`
}

// wireThingRef is the CreateThing response.
type wireThingRef struct {
	ThingName string `json:"thingName"`
	ThingArn  string `json:"thingArn"`
	ThingID   string `json:"thingId"`
}

// wireThing is the DescribeThing response.
type wireThing struct {
	DefaultClientID string            `json:"defaultClientId"`
	ThingName       string            `json:"thingName"`
	ThingID         string            `json:"thingId"`
	ThingArn        string            `json:"thingArn"`
	ThingTypeName   string            `json:"thingTypeName,omitempty"`
	Attributes      map[string]string `json:"attributes"`
	Version         int64             `json:"version"`
}

// wireThingAttribute is one thing of ListThings.
type wireThingAttribute struct {
	ThingName     string            `json:"thingName"`
	ThingTypeName string            `json:"thingTypeName,omitempty"`
	ThingArn      string            `json:"thingArn"`
	Attributes    map[string]string `json:"attributes"`
	Version       int64             `json:"version"`
}

type wireThingGroupProperties struct {
	ThingGroupDescription string                `json:"thingGroupDescription,omitempty"`
	AttributePayload      *wireAttributePayload `json:"attributePayload,omitempty"`
}

// createThingGroupRequest is the CreateThingGroup body. Tags are accepted
// and not kept: the broker serves no tagging operations.
type createThingGroupRequest struct {
	ParentGroupName      *string                   `json:"parentGroupName"`
	ThingGroupProperties *wireThingGroupProperties `json:"thingGroupProperties"`
	Tags                 []store.Tag               `json:"tags"`
}

// wireThingGroupRef is the CreateThingGroup response.
type wireThingGroupRef struct {
	ThingGroupName string `json:"thingGroupName"`
	ThingGroupArn  string `json:"thingGroupArn"`
	ThingGroupID   string `json:"thingGroupId"`
}

// wireGroupNameAndArn is GroupNameAndArn.
type wireGroupNameAndArn struct {
	GroupName string `json:"groupName"`
	GroupArn  string `json:"groupArn"`
}

type wireThingGroupMetadata struct {
	ParentGroupName         string                `json:"parentGroupName,omitempty"`
	RootToParentThingGroups []wireGroupNameAndArn `json:"rootToParentThingGroups,omitempty"`
	CreationDate            *awsapi.EpochSeconds  `json:"creationDate,omitempty"`
}

// wireThingGroup is the DescribeThingGroup response of a static group.
type wireThingGroup struct {
	ThingGroupName       string                   `json:"thingGroupName"`
	ThingGroupID         string                   `json:"thingGroupId"`
	ThingGroupArn        string                   `json:"thingGroupArn"`
	Version              int64                    `json:"version"`
	ThingGroupProperties wireThingGroupProperties `json:"thingGroupProperties"`
	ThingGroupMetadata   wireThingGroupMetadata   `json:"thingGroupMetadata"`
	Status               string                   `json:"status"`
}

// membershipRequest is the body of AddThingToThingGroup and
// RemoveThingFromThingGroup. overrideDynamicGroups has no effect: the
// broker has static groups only.
type membershipRequest struct {
	ThingGroupName        *string `json:"thingGroupName"`
	ThingGroupArn         *string `json:"thingGroupArn"`
	ThingName             *string `json:"thingName"`
	ThingArn              *string `json:"thingArn"`
	OverrideDynamicGroups *bool   `json:"overrideDynamicGroups"`
}

// updateJobRequest is the UpdateJob body; absent members are left as
// they are.
type updateJobRequest struct {
	Description        *string                   `json:"description"`
	PresignedURLConfig *store.PresignedURLConfig `json:"presignedUrlConfig"`
	RolloutConfig      *store.RolloutConfig      `json:"jobExecutionsRolloutConfig"`
	AbortConfig        *store.AbortConfig        `json:"abortConfig"`
	TimeoutConfig      *store.TimeoutConfig      `json:"timeoutConfig"`
	RetryConfig        *store.RetryConfig        `json:"jobExecutionsRetryConfig"`
}

type associateTargetsRequest struct {
	Targets []string `json:"targets"`
	Comment *string  `json:"comment"`
}

// createJobTemplateRequest is the CreateJobTemplate body; jobTemplateId
// is in the path.
type createJobTemplateRequest struct {
	JobArn                     *string                   `json:"jobArn"`
	DocumentSource             *string                   `json:"documentSource"`
	Document                   *string                   `json:"document"`
	Description                *string                   `json:"description"`
	PresignedURLConfig         *store.PresignedURLConfig `json:"presignedUrlConfig"`
	RolloutConfig              *store.RolloutConfig      `json:"jobExecutionsRolloutConfig"`
	AbortConfig                *store.AbortConfig        `json:"abortConfig"`
	TimeoutConfig              *store.TimeoutConfig      `json:"timeoutConfig"`
	Tags                       []store.Tag               `json:"tags"`
	RetryConfig                *store.RetryConfig        `json:"jobExecutionsRetryConfig"`
	MaintenanceWindows         []store.MaintenanceWindow `json:"maintenanceWindows"`
	DestinationPackageVersions []string                  `json:"destinationPackageVersions"`
}

// wireJobTemplateRef is the CreateJobTemplate response.
type wireJobTemplateRef struct {
	JobTemplateArn string `json:"jobTemplateArn"`
	JobTemplateID  string `json:"jobTemplateId"`
}

// wireJobTemplate is the DescribeJobTemplate response.
type wireJobTemplate struct {
	JobTemplateArn             string                    `json:"jobTemplateArn"`
	JobTemplateID              string                    `json:"jobTemplateId"`
	Description                string                    `json:"description,omitempty"`
	DocumentSource             string                    `json:"documentSource,omitempty"`
	Document                   string                    `json:"document,omitempty"`
	CreatedAt                  *awsapi.EpochSeconds      `json:"createdAt,omitempty"`
	PresignedURLConfig         *store.PresignedURLConfig `json:"presignedUrlConfig,omitempty"`
	RolloutConfig              *store.RolloutConfig      `json:"jobExecutionsRolloutConfig,omitempty"`
	AbortConfig                *store.AbortConfig        `json:"abortConfig,omitempty"`
	TimeoutConfig              *store.TimeoutConfig      `json:"timeoutConfig,omitempty"`
	RetryConfig                *store.RetryConfig        `json:"jobExecutionsRetryConfig,omitempty"`
	MaintenanceWindows         []store.MaintenanceWindow `json:"maintenanceWindows,omitempty"`
	DestinationPackageVersions []string                  `json:"destinationPackageVersions,omitempty"`
}

// wireJobTemplateSummary is one template of ListJobTemplates.
type wireJobTemplateSummary struct {
	JobTemplateArn string               `json:"jobTemplateArn"`
	JobTemplateID  string               `json:"jobTemplateId"`
	Description    string               `json:"description,omitempty"`
	CreatedAt      *awsapi.EpochSeconds `json:"createdAt,omitempty"`
}

// wireEventConfiguration is Configuration; the model spells its one
// member with a capital E.
type wireEventConfiguration struct {
	Enabled bool `json:"Enabled"`
}

type updateEventConfigurationsRequest struct {
	EventConfigurations map[string]wireEventConfiguration `json:"eventConfigurations"`
}

// wireEventConfigurations is the DescribeEventConfigurations response.
type wireEventConfigurations struct {
	EventConfigurations map[string]wireEventConfiguration `json:"eventConfigurations"`
	CreationDate        *awsapi.EpochSeconds              `json:"creationDate,omitempty"`
	LastModifiedDate    *awsapi.EpochSeconds              `json:"lastModifiedDate,omitempty"`
}
