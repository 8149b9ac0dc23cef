package bounce

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Classification is the verdict on one recipient of a bounce, feedback
// report, auto-reply or delivery notification, or on one SMTP reply.
type Classification struct {
	// Recipient is the failed (or reporting) recipient address; empty
	// for Classify.
	Recipient string `json:"recipient"`
	// Status is the RFC 3463 enhanced status code; where the failure
	// carried none it is made up from the reason as "5.0.9NN" / "4.0.9NN"
	// (Sisimai's pseudo codes). Empty for feedback and auto-replies.
	Status string `json:"status"`
	// ReplyCode is the SMTP reply code found ("550"), or "".
	ReplyCode string `json:"reply_code"`
	// Reason is one of Reasons.
	Reason string `json:"reason"`
	// Class is "hard" or "soft" for failures and "" for delivered,
	// feedback and vacation (see HardBounce).
	Class string `json:"class,omitempty"`
	// HardBounce is Class == "hard". Its JSON name is the one the corpus
	// score contract (shared/corpus/bounces) reads, the only key that is
	// not snake_case.
	HardBounce bool `json:"hardbounce"`
	// Category is the PowerMTA bounce category of the reason
	// (bad-mailbox, bad-domain, ... other); "" when Class is "".
	Category string `json:"category,omitempty"`
	// FeedbackType is the ARF Feedback-Type (abuse, fraud, opt-out, ...)
	// of a feedback report.
	FeedbackType string `json:"feedback_type,omitempty"`
	// Diagnostic is the remote server's reply or the report's text.
	Diagnostic string `json:"diagnostic,omitempty"`
	// Command is the SMTP command the failure followed (CONN, EHLO,
	// MAIL, RCPT, DATA), when known.
	Command string `json:"command,omitempty"`
	// RemoteMTA is the host that refused the message, when known.
	RemoteMTA string `json:"remote_mta,omitempty"`
	// ReportingMTA is the host that wrote the report, when known.
	ReportingMTA string `json:"reporting_mta,omitempty"`
	// OriginalRecipient is the DSN's Original-Recipient, when given.
	OriginalRecipient string `json:"original_recipient,omitempty"`
	// OriginalMessageID is the Message-ID of the returned message.
	OriginalMessageID string `json:"message_id,omitempty"`
	// EnvelopeID is the DSN's Original-Envelope-Id (the ENVID of the
	// sent message), when given.
	EnvelopeID string `json:"envelope_id,omitempty"`
	// Action is the DSN Action (failed, delayed, delivered, relayed,
	// expanded), when given.
	Action string `json:"action,omitempty"`
}

// JSON returns the classification as one line of JSON without a line
// end: the line `drover bounce classify` prints and the corpus score
// tool reads.
func (c Classification) JSON() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil { // cannot happen: only strings and a bool
		return []byte(fmt.Sprintf(`{"recipient":%q,"error":%q}`, c.Recipient, err))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// Classifier classifies replies and bounce messages with the embedded
// rule table plus admin rules. It is safe for concurrent use.
type Classifier struct {
	rs *ruleSet
}

// CheckRules reports the first invalid admin rule (unknown reason or bad
// regular expression). Call it when the config is loaded.
func CheckRules(extra []Rule) error {
	_, err := loadRules(defaultRulesYAML, extra)
	return err
}

// NewClassifier returns a classifier with the embedded rules and the
// admin rules extra, which are tried first in their order. Rules that
// CheckRules rejects are left out.
func NewClassifier(extra []Rule) *Classifier {
	rs, err := loadRules(defaultRulesYAML, extra)
	if err != nil {
		var ok []Rule
		for _, r := range extra {
			if CheckRules([]Rule{r}) == nil {
				ok = append(ok, r)
			}
		}
		rs, err = loadRules(defaultRulesYAML, ok)
		if err != nil {
			panic(err) // the embedded table is tested
		}
	}
	return &Classifier{rs: rs}
}

var defaultClassifier = sync.OnceValue(func() *Classifier { return NewClassifier(nil) })

// ParseMessage parses a bounce with the embedded rules. See
// Classifier.ParseMessage.
func ParseMessage(raw []byte) ([]Classification, error) {
	return defaultClassifier().ParseMessage(raw)
}

// Reply is an SMTP reply received during delivery.
type Reply struct {
	// Command is the command the reply answers: "CONN" for the greeting,
	// "EHLO", "STARTTLS", "MAIL", "RCPT", "DATA" for the reply after the
	// message. "" means RCPT.
	Command  string
	Code     int    // reply code, 550
	Enhanced string // enhanced status code when the server gave one, "5.1.1"
	Text     string // the rest of the reply
	// RemoteMTA (the host that answered) and Recipient select the
	// provider rule sets; both may be empty.
	RemoteMTA string
	Recipient string
}

// Classify classifies a reply received during delivery. The command
// decides between readings of the same words: a "user unknown" after
// DATA is a content filter, after RCPT a missing mailbox. The status is
// taken from the text when Enhanced is empty, and made up from the
// reason when the reply has none. A 2xx code gives reason "delivered".
func (c *Classifier) Classify(rp Reply) Classification {
	rc := ""
	if rp.Code >= 200 && rp.Code <= 599 {
		rc = strconv.Itoa(rp.Code)
	}
	command := strings.ToUpper(strings.TrimSpace(rp.Command))
	switch command {
	case "":
		command = "RCPT"
	case "HELO", "LHLO":
		command = "EHLO"
	}
	r := record{status: rp.Enhanced, diag: rp.Text, replyCode: rc, command: command,
		recipient: rp.Recipient, remoteMTA: rp.RemoteMTA}
	if rc != "" && rc[0] == '2' && rp.Enhanced == "" && findStatus(rp.Text) == "" {
		r.status = "2.0.0"
	}
	if command == "CONN" && rc == "" && localNetworkStatus[rp.Enhanced] {
		// No reply at all: the connection or its lookup failed here. The
		// status codes say what (RFC 3463 3.5: X.4.1 no answer from host,
		// X.4.2 bad connection, X.4.3 directory (DNS) failure, X.4.4
		// unable to route), and it is a network error, whatever the
		// words: the status table reads X.4.1 in a returned bounce as an
		// expiry, because a bounce says so only once retries ran out.
		r.reason = "networkerror"
	}
	return c.classify(r, nil)
}

// localNetworkStatus are the temporary codes a failed connection attempt
// (no reply from the server) is given.
var localNetworkStatus = map[string]bool{"4.4.1": true, "4.4.2": true, "4.4.3": true, "4.4.4": true}

// truncate cuts s to at most n bytes, at a line or blank if one is near.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	if i := strings.LastIndexAny(s, " \n"); i > n-256 {
		s = s[:i]
	}
	return s
}

// record is one recipient of a message before classification.
type record struct {
	recipient, original string
	status, diag        string
	diagType            string
	replyCode           string
	command             string
	action              string
	remoteMTA           string
	reason              string // decided by the format (feedback, vacation, ...)
	feedbackType        string
	context             string // report text about this recipient (for the command)
}

// classify turns a record into a Classification.
func (c *Classifier) classify(r record, m *message) Classification {
	r.diag = truncate(r.diag, maxDiagnostic)
	r.context = truncate(r.context, maxDiagnostic)
	out := Classification{
		Recipient:         r.recipient,
		OriginalRecipient: r.original,
		Diagnostic:        truncate(foldSpace(r.diag), maxDiagnosticOut),
		RemoteMTA:         r.remoteMTA,
		Action:            r.action,
		FeedbackType:      r.feedbackType,
	}
	if m != nil {
		out.ReportingMTA = m.reportingMTA
		out.OriginalMessageID = m.origMessageID
		out.EnvelopeID = m.envID
	}
	switch r.reason {
	case "feedback", "vacation":
		out.Reason = r.reason
		return out
	}
	out.Status = pickStatus(r.status, r.diag)
	if strings.HasPrefix(strings.ToLower(r.action), "delayed") && strings.HasPrefix(out.Status, "5.") {
		// RFC 3464 2.3.3: "delayed" is a transient state; a permanent
		// code quoted in its diagnostic does not make the report
		// permanent. The report's own 4.X.X status stands.
		if st := findStatus(r.status); strings.HasPrefix(st, "4.") {
			out.Status = st
		}
	}
	out.ReplyCode = r.replyCode
	if out.ReplyCode == "" {
		out.ReplyCode = findReplyCode(r.diag)
	}
	f := facts{
		status:    out.Status,
		replyCode: out.ReplyCode,
		diag:      r.diag,
		command:   r.command,
		action:    r.action,
		diagType:  r.diagType,
		host:      strings.ToLower(r.remoteMTA),
		preset:    r.reason,
	}
	if i := strings.LastIndexByte(r.recipient, '@'); i >= 0 {
		f.domain = strings.ToLower(r.recipient[i+1:])
	}
	f.lower = matchText(f.diag)
	if f.command == "" {
		f.command = c.rs.findCommand(matchText(r.context) + " " + f.lower)
	}
	from, subject, report := "", "", func() string { return "" }
	if m != nil {
		from, subject, report = m.from, m.subject, m.reportLower
		f.reporter = strings.ToLower(m.reportingMTA)
		if a := findAddress(m.from); a != "" {
			f.sender = strings.ToLower(a[strings.IndexByte(a, '@')+1:])
		}
	}
	c.rs.applyHints(&f, from, subject, report)
	out.Command = f.command
	out.Reason = c.rs.decide(&f)
	switch out.Reason {
	case "vacation", "feedback": // said by the text, not by a report
		out.Status, out.ReplyCode, out.Command = "", "", ""
		return out
	case "delivered":
		if out.Status == "" {
			out.Status = "2.0.0"
		}
		return out
	}
	temp := temporary(out.Status, out.ReplyCode, r.action)
	if out.Status == "" {
		class := "5"
		if temp {
			class = "4"
		}
		if p := c.rs.pseudo[out.Reason]; p != "" {
			out.Status = class + ".0." + p
		}
	}
	out.HardBounce = hardBounce(out.Reason, temp)
	out.Class = "soft"
	if out.HardBounce {
		out.Class = "hard"
	}
	out.Category = c.rs.categoryOf(&f, out.Reason)
	return out
}
