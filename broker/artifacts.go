package broker

import (
	"fmt"

	"github.com/jobsbroker/jobsbroker/jobshook/presign"
)

// ArtifactStore is the S3-compatible object store that the presigned-URL
// placeholders of job documents (${aws:iot:s3-presigned-url:...}) are
// signed for. With no Endpoint, jobs whose documents hold such
// placeholders are refused at CreateJob.
//
// A store of the operator's choosing, rather than an artifact endpoint of
// the broker's own: devices' download handlers expect S3 URLs, artifacts
// belong in storage built for large objects (and backed up with it), and
// every node of a cluster signs for the same store without sharing files.
type ArtifactStore struct {
	// Endpoint is the base URL devices download from; objects are
	// addressed path-style, {Endpoint}/{bucket}/{key}.
	Endpoint string
	// Region is the region the store checks signatures against (default:
	// the broker's Region).
	Region string
	// AccessKeyID and SecretAccessKey sign the URLs; give them read access
	// to the artifacts only.
	AccessKeyID     string
	SecretAccessKey string
}

// signer returns the store's URL signer, nil when no store is configured.
func (c *Config) artifactSigner() (*presign.Signer, error) {
	a := c.Artifacts
	if a.Endpoint == "" {
		if a.AccessKeyID != "" || a.SecretAccessKey != "" {
			return nil, fmt.Errorf("%s and %s need %s", c.name("artifact_access_key_id"), c.name("artifact_secret_access_key"), c.name("artifact_endpoint"))
		}
		return nil, nil
	}
	if a.Region == "" {
		a.Region = c.Region
	}
	s, err := presign.New(presign.Store{Endpoint: a.Endpoint, Region: a.Region,
		AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey}, c.Clock)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name("artifact_endpoint"), err)
	}
	return s, nil
}
