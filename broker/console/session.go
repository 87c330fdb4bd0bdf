package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/jobsbroker/jobsbroker/broker/auth"
)

// Sessions are stateless, so that they hold on every node of a cluster and
// across restarts: the cookie carries who logged in, until when, and a
// random nonce, signed with a key derived from the secret that was proven
// at login (the access key's secret, or the console users file). Removing
// the key or changing the file ends its sessions. The nonce is the CSRF
// token every form carries (a signed double-submit cookie).
//
// Without credentials the console is open (the API listener is then on
// loopback, unless allow_anonymous says otherwise), and visitors get an
// unsigned cookie that only carries the CSRF nonce.

const cookieName = "jobsbroker_console"

// session is a visitor's cookie, verified.
type session struct {
	Kind    string `json:"k"` // "key", "user", or "" when no login is needed
	ID      string `json:"i"` // access key id or user name
	Name    string `json:"-"` // who, for display
	Expires int64  `json:"e"`
	Nonce   string `json:"n"`
}

// Users are console logins from a password file (name:bcrypt-hash lines,
// the format of jobsbroker passwd).
type Users struct {
	passwords *auth.Passwords
	key       []byte // signs the sessions of these users
}

// LoadUsers reads a console password file.
func LoadUsers(path string) (*Users, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read console password file: %w", err)
	}
	p, err := auth.ParsePasswords(b)
	if err != nil {
		return nil, fmt.Errorf("console password file %s: %w", path, err)
	}
	if p.Len() == 0 {
		return nil, fmt.Errorf("console password file %s lists no user", path)
	}
	mac := hmac.New(sha256.New, b)
	mac.Write([]byte("jobsbroker console users"))
	return &Users{passwords: p, key: mac.Sum(nil)}, nil
}

// SetUsers replaces the console logins (on SIGHUP); nil removes them.
func (c *Console) SetUsers(u *Users) { c.users.Store(u) }

// authRequired reports whether visitors must log in.
func (c *Console) authRequired() bool {
	return c.users.Load() != nil || (c.opts.Credentials != nil && c.opts.Credentials() != nil)
}

// sessionKey returns the key that signs sessions of kind and id, or nil
// when that principal cannot log in (any more).
func (c *Console) sessionKey(kind, id string) []byte {
	derive := func(secret []byte) []byte {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte("jobsbroker console session v1\x00" + kind + "\x00" + id))
		return mac.Sum(nil)
	}
	switch kind {
	case "key":
		if c.opts.Credentials == nil {
			return nil
		}
		if k, ok := c.opts.Credentials().Lookup(id); ok {
			return derive([]byte(k.SecretAccessKey))
		}
	case "user":
		if u := c.users.Load(); u != nil {
			return derive(u.key)
		}
	}
	return nil
}

func (c *Console) encodeSession(s *session) string {
	payload, _ := json.Marshal(s)
	p := base64.RawURLEncoding.EncodeToString(payload)
	if s.Kind == "" {
		return p + "."
	}
	mac := hmac.New(sha256.New, c.sessionKey(s.Kind, s.ID))
	mac.Write([]byte(p))
	return p + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// readSession returns the visitor's valid session, or nil.
func (c *Console) readSession(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	p, sig, ok := strings.Cut(ck.Value, ".")
	if !ok {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return nil
	}
	var s session
	if json.Unmarshal(payload, &s) != nil || len(s.Nonce) < 16 {
		return nil
	}
	if s.Kind == "" {
		if sig != "" {
			return nil
		}
		return &s
	}
	key := c.sessionKey(s.Kind, s.ID)
	if key == nil || time.Now().Unix() > s.Expires {
		return nil
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(p))
	want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(sig), []byte(want)) != 1 {
		return nil
	}
	s.Name = s.ID
	if s.Kind == "key" {
		if k, ok := c.opts.Credentials().Lookup(s.ID); ok {
			s.Name = k.Name
		}
	}
	return &s
}

func newNonce() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *Console) setSession(w http.ResponseWriter, r *http.Request, s *session) {
	ck := &http.Cookie{
		Name: cookieName, Value: c.encodeSession(s), Path: Prefix,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.opts.Secure || r.TLS != nil,
	}
	if s.Kind != "" {
		ck.Expires = time.Unix(s.Expires, 0)
	}
	http.SetCookie(w, ck)
}

// handler is a console handler that knows the visitor's session.
type handler func(w http.ResponseWriter, r *http.Request, s *session)

// signedIn runs h for a visitor with a session: logged in when logins are
// required, otherwise anonymous (given a cookie if it has none). Every
// POST must carry the session's CSRF token and come from the console's own
// pages.
func (c *Console) signedIn(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.readSession(r)
		if c.authRequired() && (s == nil || s.Kind == "") {
			switch {
			case wantsStream(r):
				http.Error(w, "log in to the console", http.StatusUnauthorized)
			case r.Method == http.MethodGet:
				http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			default:
				c.errorPage(w, r, nil, http.StatusForbidden, "Your session has ended. Log in again, then repeat what you were doing.")
			}
			return
		}
		if s == nil {
			s = &session{Nonce: newNonce()}
			c.setSession(w, r, s)
		}
		if r.Method == http.MethodPost {
			if err := c.checkForm(r, s); err != nil {
				c.errorPage(w, r, s, http.StatusForbidden, err.Error())
				return
			}
		}
		h(w, r, s)
	}
}

// checkForm checks that a POST comes from a console page of this session.
func (c *Console) checkForm(r *http.Request, s *session) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return errors.New("The form was sent from another site; the console only takes its own forms.")
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" {
		if u, err := url.Parse(origin); err != nil || u.Host != r.Host {
			return errors.New("The form was sent from another site; the console only takes its own forms.")
		}
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return errors.New("The form could not be read.")
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.Nonce)) != 1 {
		return errors.New("The form has expired (it came from an earlier session). Reload the page and submit it again.")
	}
	return nil
}

// loginLimiter slows down guessing: a few login attempts a second for the
// whole console, so that a flood cannot cost much CPU (bcrypt) either.
type loginLimiter struct{ lim *rate.Limiter }

func newLoginLimiter() *loginLimiter { return &loginLimiter{lim: rate.NewLimiter(5, 10)} }

type loginForm struct {
	Next, Key, Error string
	Required         bool
	HasKeys, HasUser bool
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	s := c.readSession(r)
	if s == nil {
		s = &session{Nonce: newNonce()}
		c.setSession(w, r, s)
	}
	c.render(w, r, http.StatusOK, "login", s, "Log in", c.loginData(r.URL.Query().Get("next"), "", ""))
}

func (c *Console) loginData(next, key, msg string) loginForm {
	return loginForm{Next: safeNext(next), Key: key, Error: msg, Required: c.authRequired(),
		HasKeys: c.opts.Credentials != nil && c.opts.Credentials() != nil, HasUser: c.users.Load() != nil}
}

// safeNext keeps a redirect target within the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	s := c.readSession(r)
	if s == nil {
		c.errorPage(w, r, nil, http.StatusForbidden, "The login form has expired. Open the login page again.")
		return
	}
	if err := c.checkForm(r, s); err != nil {
		c.errorPage(w, r, s, http.StatusForbidden, err.Error())
		return
	}
	key, secret, next := strings.TrimSpace(r.PostForm.Get("key")), r.PostForm.Get("secret"), r.PostForm.Get("next")
	if c.logins.lim.Tokens() < 1 {
		w.Header().Set("Retry-After", "2")
		c.render(w, r, http.StatusTooManyRequests, "login", s, "Log in", c.loginData(next, key, "Too many login attempts. Wait a few seconds and try again."))
		return
	}
	kind := ""
	if creds := c.opts.Credentials; creds != nil {
		if k, ok := creds().Lookup(key); ok && subtle.ConstantTimeCompare([]byte(k.SecretAccessKey), []byte(secret)) == 1 {
			kind = "key"
		}
	}
	if u := c.users.Load(); kind == "" && u != nil && u.passwords.Check(key, []byte(secret)) == nil {
		kind = "user"
	}
	if kind == "" {
		c.logins.lim.Allow()
		c.log.Info("console login refused", "who", key, "remote", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, "login", s, "Log in", c.loginData(next, key, "Unknown access key or user, or a wrong secret."))
		return
	}
	ns := &session{Kind: kind, ID: key, Expires: time.Now().Add(c.opts.SessionTTL).Unix(), Nonce: newNonce()}
	c.setSession(w, r, ns)
	c.log.Info("console login", "kind", kind, "who", key, "remote", r.RemoteAddr)
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.opts.Secure || r.TLS != nil})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}
