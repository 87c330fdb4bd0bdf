package store

import (
	"errors"
	"strings"
	"testing"
)

// TestDocumentBytes: a document within 32,768 characters is also held to
// 64 KiB of UTF-8, so that an MQTT message carrying it fits in 128 KB.
func TestDocumentBytes(t *testing.T) {
	twoByte := `{"a":"` + strings.Repeat("é", MaxDocumentLength-8) + `"}`
	if err := ValidateDocument(twoByte); err != nil {
		t.Fatalf("32,768 characters in %d bytes: %v", len(twoByte), err)
	}
	threeByte := `{"a":"` + strings.Repeat("€", 22000) + `"}`
	err := ValidateDocument(threeByte)
	if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "64 KiB") {
		t.Fatalf("22,008 characters in %d bytes: %v, want InvalidRequest naming 64 KiB", len(threeByte), err)
	}
}
