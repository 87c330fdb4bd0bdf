package brokertest

import (
	"context"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go/aws/request"
	signerv1 "github.com/aws/aws-sdk-go/aws/signer/v4"
)

// SkewedSigner signs as the AWS SDK for Go v2 does, with a clock that is
// off by Skew: a client whose clock is wrong. Set it as a client's
// Options.HTTPSignerV4.
type SkewedSigner struct{ Skew time.Duration }

// SignHTTP signs r as of signingTime plus the skew.
func (s SkewedSigner) SignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string,
	signingTime time.Time, optFns ...func(*v4.SignerOptions)) error {
	return v4.NewSigner().SignHTTP(ctx, creds, r, payloadHash, service, region, signingTime.Add(s.Skew), optFns...)
}

// SkewV1 makes a client of the AWS SDK for Go v1 (its Handlers) sign with
// a clock that is off by skew.
func SkewV1(h *request.Handlers, skew time.Duration) {
	h.Sign.Swap(signerv1.SignRequestHandler.Name, request.NamedHandler{Name: "brokertest.SkewV1", Fn: func(r *request.Request) {
		signerv1.SignSDKRequestWithCurrentTime(r, func() time.Time { return time.Now().Add(skew) })
	}})
}
