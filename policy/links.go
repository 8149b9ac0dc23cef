package policy

import (
	"net/url"
	"strings"
	"time"
)

// Links makes the recipient links of a message: the List-Unsubscribe
// targets (RFC 2369, RFC 8058) and the pages of the public web listener.
type Links struct {
	Tokens  *Tokens
	BaseURL string // public base URL of the web listener, "https://..." without a trailing slash
	// MailtoDomain is the domain whose unsubscribe@ mailbox the inbound
	// listener takes, per sender ("" or missing: no mailto link).
	MailtoDomain map[string]string
	Now          func() time.Time
}

// UnsubscribePath is the path of the one-click unsubscribe page and
// endpoint; the token follows it.
const UnsubscribePath = "/u/"

// ConfirmPath is the path of the page that confirms a consent (a double
// opt-in's, or a re-permission's opt-in link); the token follows it.
// ConfirmMarker is the MsgID of its tokens: no other link's token
// confirms.
const (
	ConfirmPath   = "/c/"
	ConfirmMarker = "double-opt-in"
)

// OptIn returns r's link to the confirmation page ("" without a BaseURL).
func (l *Links) OptIn(r Recipient) string {
	if l.BaseURL == "" {
		return ""
	}
	r.MsgID = ConfirmMarker
	return strings.TrimRight(l.BaseURL, "/") + ConfirmPath + l.Tokens.Seal(r, l.Now())
}

// ManagePath is the path of the manage-subscription page; the token
// follows it. ManageMarker is the MsgID of its tokens: no other link's
// token opens the page.
const (
	ManagePath   = "/m/"
	ManageMarker = "manage"
)

// Manage returns r's link to the manage-subscription page ("" without a
// BaseURL).
func (l *Links) Manage(r Recipient) string {
	if l.BaseURL == "" {
		return ""
	}
	r.MsgID = ManageMarker
	return strings.TrimRight(l.BaseURL, "/") + ManagePath + l.Tokens.Seal(r, l.Now())
}

// MailtoLocal is the local part of the unsubscribe mailbox.
const MailtoLocal = "unsubscribe"

// Unsubscribe returns r's one-click URL ("" without a BaseURL) and its
// mailto URL (RFC 6068: the token goes in the subject; "" when the sender
// has no MailtoDomain).
func (l *Links) Unsubscribe(r Recipient) (web, mailto string) {
	tok := l.Tokens.Seal(r, l.Now())
	if l.BaseURL != "" {
		web = strings.TrimRight(l.BaseURL, "/") + UnsubscribePath + tok
	}
	if d := l.MailtoDomain[r.Sender]; d != "" {
		mailto = "mailto:" + MailtoLocal + "@" + d + "?subject=" + url.PathEscape("unsubscribe "+tok)
	}
	return web, mailto
}
