package store

import (
	"errors"
	"testing"
)

func TestListToken(t *testing.T) {
	for _, pos := range []string{"a", "thing-000042", "\x00\xff"} {
		got, err := DecodeListToken(EncodeListToken([]byte(pos)))
		if err != nil || string(got) != pos {
			t.Errorf("round trip of %q: %q, %v", pos, got, err)
		}
	}
	tok := NameListToken("pump-42")
	tampered := []byte(tok)
	tampered[0] ^= 1
	for _, bad := range []string{"", "!!", "AAAA", string(tampered)} {
		if _, err := DecodeListToken(bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("DecodeListToken(%q) = %v, want ErrInvalidRequest", bad, err)
		}
	}
}

func TestPageSize(t *testing.T) {
	for in, want := range map[int]int{0: DefaultMaxResults, 1: 1, MaxListResults: MaxListResults} {
		if got, err := PageSize(in); err != nil || got != want {
			t.Errorf("PageSize(%d) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []int{-1, MaxListResults + 1} {
		if _, err := PageSize(in); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("PageSize(%d) = %v, want ErrInvalidRequest", in, err)
		}
	}
}
