package store

// The limits that keep every MQTT message the broker sends about an
// execution (a reply, a rejection, notify-next) within AWS IoT's 128 KB
// packet limit, whatever a device or an operator sends. The largest such
// message carries the job document, a full statusDetails map, a
// clientToken and a few numbers; jobshook's reply-size test builds it and
// checks the bound.

// MaxStatusDetailsBytes is the most bytes one statusDetails map can take
// in a JSON message: MaxStatusDetails pairs of a quoted key of
// MaxStatusDetailsKeyLength ASCII characters and a quoted value of
// MaxStatusDetailsValueLength characters, each escaped to at most six
// bytes (a control character becomes \u00XX), with their separators.
const MaxStatusDetailsBytes = 2 + MaxStatusDetails*(2+MaxStatusDetailsKeyLength+1+2+6*MaxStatusDetailsValueLength+1)

// MaxDocumentBytes bounds a job document's UTF-8 encoding beside its
// 32,768 characters: 64 KiB, which every document of at most two bytes a
// character meets, and which leaves room for MaxStatusDetailsBytes and the
// rest of a message in 128 KB. Over MQTT the document is embedded as it
// was stored, without escaping.
const MaxDocumentBytes = 64 << 10

func validateDocumentBytes(doc string) error {
	if len(doc) > MaxDocumentBytes {
		return Errorf(ErrInvalidRequest, "document takes %d bytes of UTF-8; the limit is %d (64 KiB), so that an MQTT message carrying it fits in 128 KB", len(doc), MaxDocumentBytes)
	}
	return nil
}
