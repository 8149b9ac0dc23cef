package policy

import (
	"strings"
	"time"
)

// Reason is why an address is suppressed.
type Reason string

// The reasons of a suppression entry.
const (
	Unsubscribed    Reason = "unsubscribed"     // the recipient asked (one-click, mailto, page, API)
	ConfirmedBounce Reason = "confirmed-bounce" // hard bounces in a row, or one that leaves no doubt
	HardBounce      Reason = "hard-bounce"      // a hard bounce an admin or an import recorded
	Complaint       Reason = "complaint"        // a feedback report (ARF)
	SpamTrap        Reason = "spam-trap"        // a configured spam-trap address or domain
	Manual          Reason = "manual"           // an admin's entry
	Inactive        Reason = "inactive"         // sunset: no engagement with the last N marketing messages
)

// NoConsent is the reason of a Decision that refuses a recipient for
// want of consent (Config.Senders' ConsentRequired): the address's latest
// consent record for the list is not confirmed, or there is none. It is
// no suppression entry's reason: it is not among Reasons, and nothing
// stores it.
const NoConsent Reason = "no-consent"

// Reasons lists every reason of a suppression entry, in the order
// reports show them.
var Reasons = []Reason{Unsubscribed, ConfirmedBounce, HardBounce, Complaint, SpamTrap, Manual, Inactive}

// Valid reports whether r is one of Reasons.
func (r Reason) Valid() bool {
	for _, x := range Reasons {
		if r == x {
			return true
		}
	}
	return false
}

// ScopeKind is where a suppression applies.
type ScopeKind string

// The scopes: every sender, one sender, one list of one sender.
const (
	Global    ScopeKind = "global"
	PerSender ScopeKind = "sender"
	PerList   ScopeKind = "list"
)

// Scope is where an entry applies. Lists belong to a sender: the list
// "news" of sender A and that of sender B are two lists.
type Scope struct {
	Kind   ScopeKind `json:"scope"`
	Sender string    `json:"sender,omitempty"` // PerSender and PerList
	List   string    `json:"list,omitempty"`   // PerList
}

// Entry is one suppression: an address, where it applies, why, what
// caused it and when.
type Entry struct {
	Address string `json:"address"`
	Scope
	Reason Reason    `json:"reason"`
	Source string    `json:"source"` // "bounced:QUEUEID", "complained:QUEUEID", "import:FILE", "admin", "one-click", "mailto", ...
	Time   time.Time `json:"time"`
}

// Normalize is the one place where addresses are compared: two addresses
// are the same recipient when their canonical forms (mta/address's
// Address.String: local part unquoted where it can be, domain in lower
// case) are equal without regard to case, local part included. RFC 5321
// lets a server treat local parts as case-sensitive, but no mailbox
// provider does, and a sender that mails John@ after john@ unsubscribed
// would mail the same person. Dots and +tags are not folded: that is one
// provider's rule (Gmail's), not every one's.
func Normalize(addr string) string {
	return strings.ToLower(strings.TrimSpace(addr))
}

// Decision is the answer to a recipient check. The zero Decision lets
// the recipient through.
type Decision struct {
	// Suppressed: the recipient is refused, by a suppression entry or for
	// want of consent (Entry.Reason NoConsent).
	Suppressed bool
	// Entry is the entry that applies, when Suppressed: its address,
	// scope and reason, and with Drop its source and time too. A refusal
	// for want of consent has no stored entry: Entry names the address,
	// the list (PerList) or the sender (PerSender, for mail that names no
	// list), Reason NoConsent and Source "consent:STATUS" ("consent:none"
	// without a record).
	Entry Entry
	// Consent is the status of the latest consent record when the
	// refusal is for want of consent: "" when there is none.
	Consent ConsentStatus
	// Drop: the sender wants suppressed recipients accepted and dropped
	// (a suppressed event each) rather than refused at RCPT.
	Drop bool
}

// Text is the refusal in words, for the 550 5.7.1 reply: the reason's
// category and the scope, never another sender's entry (a check only
// finds entries of the global scope and of the sender asking), nor a
// spam trap's nature.
func (d Decision) Text() string {
	e := d.Entry
	where := ""
	switch e.Kind {
	case PerList:
		where = " from list " + e.List
	case PerSender:
		where = " from all mail of sender " + e.Sender
	}
	switch e.Reason {
	case NoConsent:
		if e.Kind == PerList {
			return "Recipient has no confirmed consent for list " + e.List
		}
		return "Recipient has no confirmed consent for mail of sender " + e.Sender
	case Unsubscribed:
		return "Recipient unsubscribed" + where
	case Complaint:
		return "Recipient complained about mail of sender " + e.Sender
	case ConfirmedBounce:
		return "Recipient address is suppressed for all senders: it hard-bounced (confirmed bounce)"
	case HardBounce:
		return "Recipient address is suppressed for all senders: hard bounce"
	case Inactive:
		return "Recipient is suppressed for inactivity (no engagement with recent mail of sender " + e.Sender + ")"
	case SpamTrap:
		return "Recipient address is refused by policy"
	}
	if e.Kind == Global {
		return "Recipient address is suppressed for all senders"
	}
	return "Recipient address is suppressed" + where
}

// Checker answers whether a recipient may be mailed: by sender, on
// stream ("marketing", "transactional", ...; "" is the sender's default),
// to list ("" for none). An error is the store's, and is temporary.
type Checker interface {
	Check(sender, stream, list, addr string) (Decision, error)
}

// Recipient is what a recipient link (unsubscribe, manage) names: the
// sender, the list ("" for the sender's mail as a whole) and the address,
// with the queue ID of the message it came in.
type Recipient struct {
	Sender  string
	List    string
	Address string
	MsgID   string
}

// Unsubscriber records an unsubscribe: for r's list, or for all mail of
// r's sender when r names no list. It returns once the suppression is
// committed to disk, so the next RCPT for the address is refused.
// Unsubscribing twice is not an error and changes nothing.
type Unsubscriber interface {
	Unsubscribe(r Recipient, source string) error
}
