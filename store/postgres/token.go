package postgres

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"

	"github.com/jobsbroker/jobsbroker/store"
)

// List tokens are opaque to clients: a position in the list followed by a
// CRC-32 of it, base64url-encoded. The checksum makes a token that this
// store did not hand out an invalid request rather than a position.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeToken(pos []byte) string {
	b := binary.BigEndian.AppendUint32(append([]byte(nil), pos...), crc32.Checksum(pos, castagnoli))
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(tok string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 5 {
		return nil, store.Errorf(store.ErrInvalidRequest, "nextToken is not valid")
	}
	pos, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(pos, castagnoli) != sum {
		return nil, store.Errorf(store.ErrInvalidRequest, "nextToken is not valid")
	}
	return pos, nil
}

// token is the token of a name-ordered list that ended at last.
func token(last string) string { return encodeToken([]byte(last)) }
