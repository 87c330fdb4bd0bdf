package controlplane

import (
	"context"
	"errors"
	"strings"

	"github.com/jobsbroker/jobsbroker/jobshook/presign"
	"github.com/jobsbroker/jobsbroker/store"
)

// Checks on the placeholders a job document may hold, made when a job or
// template is created so that nothing a device cannot use is ever stored.

// checkDocument refuses a document whose placeholders the broker could
// not replace for a device: a code-signing placeholder (AWS's Jobs
// service never fills one; the AWS IoT console signs the file with AWS
// Signer and writes the signature into the document before CreateJob), a
// presigned-URL placeholder that names no object or that no artifact store
// is configured to sign, or one whose signed URLs would take the document
// past store.MaxDocumentBytes.
func (a *API) checkDocument(doc string) error {
	if i := strings.Index(doc, presign.CodeSignPrefix); i >= 0 {
		return invalid("the document holds a code-signing placeholder (" + presign.CodeSignPrefix + "...}), which this broker does not fill: " +
			"sign the file with your code-signing key and put the signature itself in the document")
	}
	expanded, err := a.opts.Artifacts.Check(doc)
	if err != nil {
		return invalid("document: " + err.Error())
	}
	if len(expanded) > store.MaxDocumentBytes {
		return invalid("with its presigned URLs signed, the document would take more than 64 KiB, the largest a device is sent; use fewer or shorter placeholders")
	}
	return nil
}

// checkJobDocument checks the document a CreateJob request gives a job:
// its document, or its template's with documentParameters substituted.
func (a *API) checkJobDocument(ctx context.Context, in *store.CreateJobInput) error {
	if in.Job.JobTemplateArn == "" || in.Template != nil {
		return a.checkDocument(in.Document)
	}
	for _, v := range in.Job.DocumentParameters {
		if strings.Contains(v, presign.CodeSignPrefix) {
			return a.checkDocument(v)
		}
	}
	id, err := store.ParseTemplateARN(in.Job.JobTemplateArn)
	if err != nil {
		return nil // the store answers it
	}
	t, err := a.opts.Store.DescribeJobTemplate(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the store answers it
	}
	if err != nil {
		return err
	}
	doc, err := store.SubstituteParameters(t.Document, in.Job.DocumentParameters)
	if err != nil {
		return nil // the store answers it
	}
	return a.checkDocument(doc)
}
