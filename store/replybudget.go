package store

// The limits that keep every MQTT message the broker sends about an
// execution (a reply, a rejection, notify-next) within AWS IoT's 128 KB
// packet limit, whatever a device or an operator sends. The largest such
// message carries the job document, a full statusDetails map, a
// clientToken and a few numbers; jobshook's reply-size test builds it and
// checks the bound.

// MaxDocumentBytes bounds a job document's UTF-8 encoding beside its
// 32,768 characters: 64 KiB, which every document of at most two bytes a
// character meets, and which leaves room in 128 KB for a full statusDetails
// map (ten pairs of a 128-byte key and a 1,024-character value, each
// character escaped to at most six bytes: about 62 KB) and the rest of a
// message. Over MQTT the document is embedded as it was stored, without
// escaping.
const MaxDocumentBytes = 64 << 10

func validateDocumentBytes(doc string) error {
	if len(doc) > MaxDocumentBytes {
		return Errorf(ErrInvalidRequest, "document takes %d bytes of UTF-8; the limit is %d (64 KiB), so that an MQTT message carrying it fits in 128 KB", len(doc), MaxDocumentBytes)
	}
	return nil
}
