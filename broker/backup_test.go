package broker_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestBackupEmbeddedStore: GET /admin/backup streams the embedded store,
// with the trailer that says the backup is whole.
func TestBackupEmbeddedStore(t *testing.T) {
	b := brokertest.Start(t)
	resp, err := b.HTTPClient(nil).Get(b.APIURL() + "/admin/backup")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || len(body) == 0 || resp.Trailer.Get(broker.BackupCompleteTrailer) != "true" {
		t.Fatalf("backup: %s, %d bytes, trailer %q", resp.Status, len(body), resp.Trailer.Get(broker.BackupCompleteTrailer))
	}
}

// TestBackupSharedStore: a store that cannot stream a backup (PostgreSQL,
// backed up with the database's tools) answers 501 with an AWS-shaped
// error, whatever backend it is: the broker asks the store, not its kind.
func TestBackupSharedStore(t *testing.T) {
	url := brokertest.PostgresURL(t)
	b := brokertest.Start(t, func(c *broker.Config) { c.Store, c.StoreURL = broker.StorePostgres, url })
	resp, err := b.HTTPClient(nil).Get(b.APIURL() + "/admin/backup")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Message string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotImplemented || resp.Header.Get("X-Amzn-Errortype") == "" || e.Message == "" {
		t.Fatalf("backup of a shared store: %s %q %+v", resp.Status, resp.Header.Get("X-Amzn-Errortype"), e)
	}
}
