package store

import (
	"strings"
	"unicode/utf8"
)

// MaxStatusDetails is the most name/value pairs a statusDetails map may
// hold, wherever it enters: UpdateJobExecution and
// StartNextPendingJobExecution (MQTT and HTTP) and CancelJobExecution.
// AWS documents the limit on CancelJobExecution; applying it everywhere
// bounds every reply that carries the map.
const MaxStatusDetails = MaxCancelStatusDetails

// validateStatusDetails checks a statusDetails map as AWS's service takes
// it from real agents: at most MaxStatusDetails pairs; keys of 1-128
// characters from [a-zA-Z0-9:_-]; values of 1-1,024 characters of valid
// UTF-8 of any kind but U+0000. The model's value pattern ([^\p{C}]+)
// would refuse line breaks and tabs, yet AWS accepts them: the AWS IoT
// Device Client reports a handler's output with its line breaks, and AWS's
// console shows it. U+0000 is refused because a PostgreSQL store cannot
// keep it (jsonb), and both stores answer alike.
//
// Messages never quote a value and quote at most the first 40 bytes of a
// key, so a rejection stays small whatever was sent.
func validateStatusDetails(details map[string]string) error {
	if len(details) > MaxStatusDetails {
		return Errorf(ErrInvalidRequest, "statusDetails has %d entries; it may have at most %d", len(details), MaxStatusDetails)
	}
	for k, v := range details {
		if k == "" || len(k) > MaxStatusDetailsKeyLength || !validDetailsKey(k) {
			return Errorf(ErrInvalidRequest, "statusDetails key %q must be 1-128 characters from [a-zA-Z0-9:_-]", truncate(k))
		}
		if !utf8.ValidString(v) {
			return Errorf(ErrInvalidRequest, "statusDetails value of %q is not valid UTF-8", k)
		}
		if n := utf8.RuneCountInString(v); n == 0 || n > MaxStatusDetailsValueLength {
			return Errorf(ErrInvalidRequest, "statusDetails value of %q has %d characters; it must have 1-1024", k, n)
		}
		if i := strings.IndexByte(v, 0); i >= 0 {
			return Errorf(ErrInvalidRequest, "statusDetails value of %q holds U+0000 at byte %d; a value may hold any other character", k, i)
		}
	}
	return nil
}
