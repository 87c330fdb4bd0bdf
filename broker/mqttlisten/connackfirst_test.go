package mqttlisten

import (
	"bytes"
	"testing"
)

// Whole packets as mochi writes them.
var (
	connack  = []byte{0x20, 0x02, 0x01, 0x00}
	publishA = []byte{0x30, 0x03, 0x00, 0x01, 'a'}
	publishB = []byte{0x30, 0x03, 0x00, 0x01, 'b'}
	auth     = []byte{0xf0, 0x00}
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestConnackFirst(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes [][]byte
		want   [][]byte // what goes out for each write (nil: nothing)
	}{
		{"connack first passes", [][]byte{connack, publishA}, [][]byte{connack, publishA}},
		{"a publish waits for the connack", [][]byte{publishA, publishB, connack, publishA},
			[][]byte{nil, nil, cat(connack, publishA, publishB), publishA}},
		{"a connack behind a publish in one write goes first", [][]byte{cat(publishA, connack, publishB)},
			[][]byte{cat(connack, publishA, publishB)}},
		{"kept packets stay ahead of the rest of the write", [][]byte{publishA, cat(publishB, connack, publishA)},
			[][]byte{nil, cat(connack, publishA, publishB, publishA)}},
		{"auth before the connack passes", [][]byte{auth, connack}, [][]byte{auth, connack}},
		{"bytes that are not whole packets end the ordering", [][]byte{publishA, {0x30, 0x05, 0x00}},
			[][]byte{nil, cat(publishA, []byte{0x30, 0x05, 0x00})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g connackFirst
			for i, w := range tc.writes {
				if got := g.order(w); !bytes.Equal(got, tc.want[i]) {
					t.Fatalf("write %d (% x): got % x, want % x", i, w, got, tc.want[i])
				}
			}
		})
	}
}

func TestPacketLen(t *testing.T) {
	long := append([]byte{0x30, 0x80, 0x01}, make([]byte, 128)...) // remaining length 128 in two bytes
	for _, tc := range []struct {
		p    []byte
		want int
	}{
		{connack, 4}, {cat(connack, publishA), 4}, {long, 131}, {long[:100], 0}, {[]byte{0x30}, 0}, {nil, 0},
	} {
		if got := packetLen(tc.p); got != tc.want {
			t.Errorf("packetLen(% x...) = %d, want %d", tc.p[:min(len(tc.p), 4)], got, tc.want)
		}
	}
}
