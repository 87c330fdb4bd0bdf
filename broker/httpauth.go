package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/broker/sigv4"
	"github.com/jobsbroker/jobsbroker/topics"
)

// Signing names the HTTP APIs accept. The AWS SDKs sign IoT control-plane
// calls as "iot"; Debian's AWS CLI v2 signs them as "execute-api", the
// name AWS's front door asks for in its wrong-service message.
var (
	controlServices = []string{"execute-api", "iot"}
	dataServices    = []string{"iot-jobs-data"}
)

// loadCredentials builds the SigV4 verifiers of both APIs from the
// credentials file. Signatures are checked against the wall clock, never
// the broker's (a -debug-clock-offset for testing timers must not turn
// every signed call away), and, unless AnySigningRegion is set, must be
// scoped to the broker's region.
func (b *Broker) loadCredentials() error {
	if b.cfg.CredentialsFile == "" {
		return nil
	}
	creds, err := sigv4.LoadCredentials(b.cfg.CredentialsFile)
	if err != nil {
		return err
	}
	opts := sigv4.Options{Region: b.cfg.Region, MaxBodyBytes: awsapi.MaxBodyBytes}
	if b.cfg.AnySigningRegion {
		opts.Region = ""
	}
	opts.Services = controlServices
	if b.controlSig, err = sigv4.NewVerifier(creds, opts); err != nil {
		return err
	}
	opts.Services = dataServices
	if b.dataSig, err = sigv4.NewVerifier(creds, opts); err != nil {
		return err
	}
	return nil
}

// signedOnly lets through control-plane requests with a valid signature
// and answers the others as AWS's front door does (see frontDoorError).
// Without a credentials file it lets everything through.
func (b *Broker) signedOnly(next http.Handler) http.Handler {
	if b.controlSig == nil {
		return next
	}
	observe := b.Metrics.API("control")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		p, err := b.controlSig.Verify(r)
		if err != nil {
			e := b.sigError(r, "control", err)
			awsapi.WriteError(w, e)
			observe("Authenticate", e.Status, e.Type, time.Since(start))
			return
		}
		b.log.Debug("signed request", "api", "control", "principal", p.Name, "path", r.URL.Path)
		next.ServeHTTP(w, r)
	})
}

// sigError maps a verification failure to the answer of AWS's front door
// and logs it.
func (b *Broker) sigError(r *http.Request, api string, err error) *awsapi.Error {
	var se *sigv4.Error
	if !errors.As(err, &se) {
		b.log.Warn("could not read a request to verify its signature", "api", api, "error", err)
		return awsapi.Errorf(http.StatusBadRequest, "InvalidRequestException", "the request body could not be read")
	}
	if errors.Is(err, sigv4.ErrBodyTooLarge) {
		return awsapi.Errorf(http.StatusRequestEntityTooLarge, "InvalidRequestException", se.Message)
	}
	b.refusedLog.Log(b.log, slog.LevelInfo, "refused an unsigned or wrongly signed request", "api", api, "method", r.Method, "path", r.URL.Path,
		"remote", r.RemoteAddr, "error", se.Kind, "detail", se.Detail)
	return frontDoorError(se)
}

// frontDoorError is how AWS answers a request whose signature fails, before
// any service sees it: 403, with the exception in x-amzn-ErrorType and
// __type and AWS's message. The SDKs raise a different error type for
// each, so the broker gives the same answers on both APIs: no signature
// at all, an Authorization header it cannot parse, an access key it does
// not know, and every other failure (wrong signature, secret, scope or
// time).
func frontDoorError(se *sigv4.Error) *awsapi.Error {
	typ := "InvalidSignatureException"
	switch {
	case errors.Is(se, sigv4.ErrMissingAuth):
		typ = "MissingAuthenticationTokenException"
	case errors.Is(se, sigv4.ErrMalformed):
		typ = "IncompleteSignatureException"
	case errors.Is(se, sigv4.ErrUnknownKey):
		typ = "UnrecognizedClientException"
	}
	return awsapi.Errorf(http.StatusForbidden, typ, se.Message)
}

// deviceGate guards the data plane (the iot-jobs-data API). A request is
// let through when it carries a verified client certificate whose thing is
// the {thingName} of the path, or a valid SigV4 signature; with neither a
// client CA nor a credentials file configured, every request is. A
// signature failure is answered as AWS's front door answers it (403, see
// frontDoorError), as on the control plane; a certificate that may not act
// for the thing, or neither a certificate nor a signature where only
// certificates are taken, is CertificateValidationException (400), the
// authentication error the API's model declares for its mutual-TLS
// endpoint. A request over its thing's rate is answered
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
		thing, ok := pathThing(r.URL.EscapedPath())
		if !ok && r.URL.Path == "/command-executions" {
			// StartCommandExecution is an operator's call: a signature
			// when credentials are configured; where only certificates
			// are taken, the certificate of an operator (-operators),
			// never a device's.
			switch {
			case b.dataSig != nil:
				if _, err := b.dataSig.Verify(r); err != nil {
					fail(w, start, b.sigError(r, "data", err))
					return
				}
			case verifyCerts:
				cn := ""
				if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
					cn = r.TLS.PeerCertificates[0].Subject.CommonName
				}
				if cn == "" || !slices.Contains(b.cfg.Operators, cn) {
					fail(w, start, awsapi.Errorf(http.StatusBadRequest, "CertificateValidationException",
						"StartCommandExecution takes an operator's certificate or a signature"))
					return
				}
			}
		}
		if !ok {
			next.ServeHTTP(w, r) // no device route; the API answers it
			return
		}
		switch {
		case r.TLS != nil && len(r.TLS.VerifiedChains) > 0:
			cn := r.TLS.PeerCertificates[0].Subject.CommonName
			if cn != thing {
				b.refusedLog.Log(b.log, slog.LevelInfo, "refused a device certificate for another thing", "api", "data", "certificate", cn, "thing", thing, "remote", r.RemoteAddr)
				fail(w, start, awsapi.Errorf(http.StatusBadRequest, "CertificateValidationException",
					fmt.Sprintf("the certificate of thing %s may not act for thing %s", cn, thing)))
				return
			}
		case b.dataSig != nil:
			if _, err := b.dataSig.Verify(r); err != nil {
				fail(w, start, b.sigError(r, "data", err))
				return
			}
		case verifyCerts:
			fail(w, start, awsapi.Errorf(http.StatusBadRequest, "CertificateValidationException",
				"the request carries neither a device certificate nor a signature"))
			return
		}
		// An invalid name reaches no store: the API refuses it, with no
		// rate to keep for it.
		if topics.ValidThingName(thing) && !b.throttle.Allow(thing) {
			fail(w, start, awsapi.Errorf(http.StatusTooManyRequests, "ThrottlingException",
				"thing "+thing+" sends requests faster than its rate limit; retry later"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pathThing returns the {thingName} of a data-plane path,
// /things/{thingName}/jobs..., given as sent (escaped), and whether the
// path is one. Each label is decoded on its own, as the API's router
// does, so the thing checked here is the thing the operation acts for:
// "/%74hings/a/jobs" is thing a's, and "/things/a%2Fb/jobs" names "a/b",
// not thing a. An invalid name is returned as it is: the caller
// authenticates the request all the same (no certificate is a thing's
// with that name), so that nobody reaches the API's validation
// unidentified.
func pathThing(escaped string) (string, bool) {
	segs := strings.SplitN(escaped, "/", 4)
	if len(segs) < 3 || segs[0] != "" || segs[2] == "" {
		return "", false
	}
	things, err1 := url.PathUnescape(segs[1])
	thing, err2 := url.PathUnescape(segs[2])
	if err1 != nil || err2 != nil || things != "things" {
		return "", false
	}
	return thing, true
}
