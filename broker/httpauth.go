package broker

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/broker/sigv4"
	"github.com/jobsbroker/jobsbroker/topics"
)

// Signing names the HTTP APIs accept. The AWS SDKs sign IoT control-plane
// calls as "iot"; Debian's AWS CLI v2 signs them as "execute-api".
var (
	controlServices = []string{"iot", "execute-api"}
	dataServices    = []string{"iot-jobs-data"}
)

// loadCredentials builds the SigV4 verifiers of both APIs from the
// credentials file.
func (b *Broker) loadCredentials() error {
	if b.cfg.CredentialsFile == "" {
		return nil
	}
	creds, err := sigv4.LoadCredentials(b.cfg.CredentialsFile)
	if err != nil {
		return err
	}
	if b.controlSig, err = sigv4.NewVerifier(creds, sigv4.Options{Services: controlServices, MaxBodyBytes: awsapi.MaxBodyBytes}); err != nil {
		return err
	}
	if b.dataSig, err = sigv4.NewVerifier(creds, sigv4.Options{Services: dataServices, MaxBodyBytes: awsapi.MaxBodyBytes}); err != nil {
		return err
	}
	return nil
}

// signedOnly lets through control-plane requests with a valid signature
// and answers the others UnauthorizedException, as AWS IoT does. Without a
// credentials file it lets everything through.
func (b *Broker) signedOnly(next http.Handler) http.Handler {
	if b.controlSig == nil {
		return next
	}
	observe := b.Metrics.API("control")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		p, err := b.controlSig.Verify(r)
		if err != nil {
			e := b.sigError(r, "control", err, http.StatusUnauthorized, "UnauthorizedException")
			awsapi.WriteError(w, e)
			observe("Authenticate", e.Status, e.Type, time.Since(start))
			return
		}
		b.log.Debug("signed request", "api", "control", "principal", p.Name, "path", r.URL.Path)
		next.ServeHTTP(w, r)
	})
}

// sigError maps a verification failure to the AWS error an API answers.
func (b *Broker) sigError(r *http.Request, api string, err error, status int, typ string) *awsapi.Error {
	var se *sigv4.Error
	if !errors.As(err, &se) {
		b.log.Warn("could not read a request to verify its signature", "api", api, "error", err)
		return awsapi.Errorf(http.StatusBadRequest, "InvalidRequestException", "the request body could not be read")
	}
	if errors.Is(err, sigv4.ErrBodyTooLarge) {
		return awsapi.Errorf(http.StatusRequestEntityTooLarge, "InvalidRequestException", se.Message)
	}
	b.log.Info("refused an unsigned or wrongly signed request", "api", api, "method", r.Method, "path", r.URL.Path,
		"remote", r.RemoteAddr, "error", se.Kind, "detail", se.Detail)
	return awsapi.Errorf(status, typ, se.Message)
}

// deviceGate guards the data plane (the iot-jobs-data API). A request is
// let through when it carries a verified client certificate whose thing is
// the {thingName} of the path, or a valid SigV4 signature; with neither a
// client CA nor a credentials file configured, every request is. Failures
// are CertificateValidationException, the one authentication error the
// API's model declares. A request over its thing's rate is answered
// ThrottlingException.
func (b *Broker) deviceGate(next http.Handler) http.Handler {
	verifyCerts := b.certs != nil && b.certs.VerifiesClients()
	observe := b.Metrics.API("data")
	fail := func(w http.ResponseWriter, start time.Time, e *awsapi.Error) {
		awsapi.WriteError(w, e)
		observe("Authenticate", e.Status, e.Type, time.Since(start))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		thing, ok := pathThing(r.URL.Path)
		if !ok {
			next.ServeHTTP(w, r) // no device route; the API answers it
			return
		}
		switch {
		case r.TLS != nil && len(r.TLS.VerifiedChains) > 0:
			cn := r.TLS.PeerCertificates[0].Subject.CommonName
			if cn != thing {
				b.log.Info("refused a device certificate for another thing", "api", "data", "certificate", cn, "thing", thing, "remote", r.RemoteAddr)
				fail(w, start, awsapi.Errorf(http.StatusBadRequest, "CertificateValidationException",
					fmt.Sprintf("the certificate of thing %s may not act for thing %s", cn, thing)))
				return
			}
		case b.dataSig != nil:
			if _, err := b.dataSig.Verify(r); err != nil {
				fail(w, start, b.sigError(r, "data", err, http.StatusBadRequest, "CertificateValidationException"))
				return
			}
		case verifyCerts:
			fail(w, start, awsapi.Errorf(http.StatusBadRequest, "CertificateValidationException",
				"the request carries neither a device certificate nor a signature"))
			return
		}
		if !b.throttle.Allow(thing) {
			fail(w, start, awsapi.Errorf(http.StatusTooManyRequests, "ThrottlingException",
				"thing "+thing+" sends requests faster than its rate limit; retry later"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pathThing returns the {thingName} of a data-plane path,
// /things/{thingName}/jobs...
func pathThing(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/things/")
	if !ok {
		return "", false
	}
	thing, _, _ := strings.Cut(rest, "/")
	return thing, topics.ValidThingName(thing)
}
