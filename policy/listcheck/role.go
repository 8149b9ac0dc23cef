package listcheck

import "strings"

// roleAccounts are the local parts of role accounts: mailboxes of a
// function (RFC 2142's postmaster, abuse, ...; a company's info, sales,
// ...), read by several people or by none, that did not sign up for
// anything and complain more than persons do.
var roleAccounts = []string{
	"abuse", "accounting", "accounts", "admin", "administrator", "billing", "careers", "compliance",
	"contact", "customerservice", "devnull", "do-not-reply", "donotreply", "enquiries", "feedback",
	"ftp", "help", "helpdesk", "hostmaster", "hr", "info", "inquiries", "jobs", "list", "list-request",
	"mailer-daemon", "marketing", "media", "news", "newsletter", "no-reply", "no_reply", "noc",
	"noreply", "nobody", "null", "office", "orders", "postmaster", "press", "privacy", "root",
	"sales", "security", "service", "spam", "subscribe", "support", "sysadmin", "team",
	"unsubscribe", "usenet", "uucp", "webmaster", "www",
}

var roleSet = func() map[string]bool {
	m := make(map[string]bool, len(roleAccounts))
	for _, r := range roleAccounts {
		m[r] = true
	}
	return m
}()

// Role returns the role account a local part names ("" for none): the
// local part without its +tag, in lower case, when it is one of
// roleAccounts. Info+news and INFO are info.
func Role(local string) string {
	base, _, _ := strings.Cut(local, "+")
	base = strings.ToLower(base)
	if roleSet[base] {
		return base
	}
	return ""
}
