package registryclient

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// redactURL renders u without user info and with the query replaced, since
// signed blob-storage URLs carry their tokens in the query.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	r.User = nil
	r.Fragment, r.RawFragment = "", ""
	s := r.String()
	if r.RawQuery != "" || r.ForceQuery {
		s = strings.SplitN(s, "?", 2)[0] + "?<redacted>"
	}
	return s
}

// redactString redacts a string that may be a URL.
func redactString(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.User == nil && u.RawQuery == "") {
		if strings.ContainsAny(s, "@?") {
			return "<redacted>"
		}
		return s
	}
	return redactURL(u)
}

// secrets remembers the credentials the keychain handed out, so that no
// error or log line can carry them even if a server echoes them back.
type secrets struct {
	mu   sync.RWMutex
	list []string
}

func (s *secrets) add(vals ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vals {
		if len(v) < 4 {
			continue
		}
		found := false
		for _, x := range s.list {
			if x == v {
				found = true
			}
		}
		if !found {
			s.list = append(s.list, v)
		}
	}
	// Longest first, so a secret containing another is replaced whole.
	sort.Slice(s.list, func(i, j int) bool { return len(s.list[i]) > len(s.list[j]) })
}

func (s *secrets) addBasic(user, pass string) {
	s.add(base64.StdEncoding.EncodeToString([]byte(user+":"+pass)), url.QueryEscape(pass), url.PathEscape(pass))
}

func (s *secrets) scrubString(msg string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.list {
		msg = strings.ReplaceAll(msg, v, "<redacted>")
	}
	return msg
}

// scrubbedError keeps the chain of err for errors.Is and errors.As but
// renders a text free of secrets.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrub returns err with any known secret removed from its text.
func (c *Client) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := c.secrets.scrubString(msg)
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

// registryErrors summarises a registry's JSON error body:
// "MANIFEST_UNKNOWN: manifest unknown". Anything else is not repeated.
func registryErrors(body []byte) string {
	var doc struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return ""
	}
	var parts []string
	for i, e := range doc.Errors {
		if i == 3 {
			parts = append(parts, "…")
			break
		}
		p := e.Code
		if m := strings.TrimSpace(e.Message); m != "" {
			if len(m) > 200 {
				m = m[:200] + "…"
			}
			p += ": " + m
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}
