package sigv4

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func sortedKeys(c *Credentials) []Key {
	var ks []Key
	for _, k := range c.byID {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].AccessKeyID < ks[j].AccessKeyID })
	return ks
}

func TestLoadCredentials(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []Key
		// wantErr lists substrings of the error; every error row must
		// also wrap ErrInvalidCredentials.
		wantErr []string
	}{
		{
			name: "two profiles, name defaults to the profile",
			file: "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s3cr3t/With+Slash\n\n" +
				"[ops]\naws_access_key_id=AKIAOPS\naws_secret_access_key=opssecret\njobsbroker_name = operations\nregion = eu-west-1\n",
			want: []Key{
				{AccessKeyID: "AKIADEFAULT", SecretAccessKey: "s3cr3t/With+Slash", Name: "default"},
				{AccessKeyID: "AKIAOPS", SecretAccessKey: "opssecret", Name: "operations"},
			},
		},
		{
			name: "CLI dialect: comments, colon, key case, CRLF, quotes and # kept",
			file: "# leading comment\r\n; another\r\n[p1]\r\nAWS_Access_Key_ID: AKIAP1\r\naws_secret_access_key = \"quoted\" # not a comment\r\n",
			want: []Key{{AccessKeyID: "AKIAP1", SecretAccessKey: "\"quoted\" # not a comment", Name: "p1"}},
		},
		{
			name: "profiles without static keys are skipped",
			file: "[sso]\nsso_start_url = https://example.invalid\nregion = us-east-1\n[k]\naws_access_key_id = AKIAK\naws_secret_access_key = x\naws_session_token = ignored\n",
			want: []Key{{AccessKeyID: "AKIAK", SecretAccessKey: "x", Name: "k"}},
		},
		{
			name: "two keys for one principal",
			file: "[old]\naws_access_key_id = AKIAOLD\naws_secret_access_key = a\njobsbroker_name = ci\n[new]\naws_access_key_id = AKIANEW\naws_secret_access_key = b\njobsbroker_name = ci\n",
			want: []Key{
				{AccessKeyID: "AKIANEW", SecretAccessKey: "b", Name: "ci"},
				{AccessKeyID: "AKIAOLD", SecretAccessKey: "a", Name: "ci"},
			},
		},
		{
			// configparser (and so the CLI) reads an indented line as the
			// continuation of the value above it.
			name:    "indented line continues the previous value",
			file:    "[a]\naws_access_key_id = AKIA1\n  aws_secret_access_key = s\n",
			wantErr: []string{"profile [a]", "missing aws_secret_access_key"},
		},
		{name: "empty file", file: "", wantErr: []string{"no profile with aws_access_key_id"}},
		{name: "only comments", file: "# nothing\n\n", wantErr: []string{"no profile"}},
		{name: "only key-less profiles", file: "[a]\nregion = x\n", wantErr: []string{"no profile"}},
		{
			name:    "missing secret names profile and line",
			file:    "[good]\naws_access_key_id = AKIAGOOD\naws_secret_access_key = g\n\n[bad]\naws_access_key_id = AKIABAD\n",
			wantErr: []string{"line 5", "profile [bad]", "missing aws_secret_access_key"},
		},
		{
			name:    "empty secret",
			file:    "[bad]\naws_access_key_id = AKIABAD\naws_secret_access_key =\n",
			wantErr: []string{"line 1", "profile [bad]", "missing aws_secret_access_key"},
		},
		{
			name:    "missing access key id",
			file:    "[bad]\naws_secret_access_key = s\n",
			wantErr: []string{"profile [bad]", "missing aws_access_key_id"},
		},
		{
			name: "duplicate access key id names both profiles",
			file: "[a]\naws_access_key_id = AKIADUP\naws_secret_access_key = 1\n" +
				"[b]\naws_access_key_id = AKIADUP\naws_secret_access_key = 2\n",
			wantErr: []string{"line 4", "profile [b]", `"AKIADUP"`, "profile [a]"},
		},
		{
			name: "duplicate profile",
			file: "[a]\naws_access_key_id = AKIA1\naws_secret_access_key = 1\n" +
				"[a]\naws_access_key_id = AKIA2\naws_secret_access_key = 2\n",
			wantErr: []string{"line 4", "profile [a] appears twice", "first at line 1"},
		},
		{
			name:    "duplicate key in a profile",
			file:    "[a]\naws_access_key_id = AKIA1\naws_secret_access_key = 1\naws_secret_access_key = 2\n",
			wantErr: []string{"profile [a]", "aws_secret_access_key is set twice"},
		},
		{
			name:    "keys before any section",
			file:    "# c\naws_access_key_id = AKIA1\n[a]\naws_access_key_id = AKIA2\naws_secret_access_key = 2\n",
			wantErr: []string{"line 2", "outside a [profile] section"},
		},
		{
			name:    "keys in [DEFAULT]",
			file:    "[DEFAULT]\nregion = x\n[a]\naws_access_key_id = AKIA2\naws_secret_access_key = 2\n",
			wantErr: []string{"line 1", "[DEFAULT]"},
		},
		{
			name:    "line without delimiter does not leak its content",
			file:    "[a]\naws_access_key_id = AKIA1\naws_secret_access_key TOPSECRET\n",
			wantErr: []string{"line 3", "not a section header"},
		},
		{
			name:    "unclosed section header",
			file:    "[a\naws_access_key_id = AKIA1\n",
			wantErr: []string{"line 1"},
		},
		{
			name:    "access key id with a slash",
			file:    "[a]\naws_access_key_id = AKIA/1\naws_secret_access_key = s\n",
			wantErr: []string{"profile [a]", "only letters, digits"},
		},
		{
			name:    "empty principal name",
			file:    "[a]\naws_access_key_id = AKIA1\naws_secret_access_key = s\njobsbroker_name =\n",
			wantErr: []string{"profile [a]", "empty principal name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadCredentials(writeFile(t, tt.file))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("LoadCredentials succeeded with %v, want error", sortedKeys(c))
				}
				if !errors.Is(err, ErrInvalidCredentials) {
					t.Errorf("error %q does not wrap ErrInvalidCredentials", err)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				if strings.Contains(err.Error(), "TOPSECRET") {
					t.Errorf("error %q leaks file content", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCredentials: %v", err)
			}
			if got := sortedKeys(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("keys = %#v, want %#v", got, tt.want)
			}
			if c.Len() != len(tt.want) {
				t.Errorf("Len = %d, want %d", c.Len(), len(tt.want))
			}
		})
	}
}

func TestLoadCredentialsMissingFile(t *testing.T) {
	_, err := LoadCredentials(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestNewCredentials(t *testing.T) {
	if _, err := NewCredentials(Key{"A", "s", "n"}, Key{"A", "t", "m"}); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("duplicate id: err = %v", err)
	}
	if _, err := NewCredentials(Key{"A", "", "n"}); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("empty secret: err = %v", err)
	}
	c, err := NewCredentials(Key{"A", "s", "n"})
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := c.Lookup("A"); !ok || k.Name != "n" {
		t.Errorf("Lookup(A) = %v, %v", k, ok)
	}
	if _, ok := c.Lookup("B"); ok {
		t.Error("Lookup(B) found a key")
	}
	var nilSet *Credentials
	if _, ok := nilSet.Lookup("A"); ok || nilSet.Len() != 0 {
		t.Error("nil set is not empty")
	}
}

func TestKeyFormattingHidesSecret(t *testing.T) {
	k := Key{AccessKeyID: "AKIA1", SecretAccessKey: "TOPSECRET", Name: "n"}
	wrapped := struct{ K Key }{k}
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%v", wrapped), fmt.Sprintf("%+v", wrapped)} {
		if strings.Contains(s, "TOPSECRET") {
			t.Errorf("formatted key %q shows the secret", s)
		}
	}
}
