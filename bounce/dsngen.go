package bounce

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// DSNRecipient is one recipient of a generated delivery status
// notification.
type DSNRecipient struct {
	Addr        string    // final recipient address
	ORCPT       string    // original recipient as given with RCPT ORCPT= ("rfc822;user@example.org"), or ""
	Action      string    // "failed" or "delayed" ("delivered", "relayed", "expanded" are accepted too)
	Status      string    // enhanced status code, "5.1.1"
	RemoteMTA   string    // host name of the server that answered, or ""
	Diagnostic  string    // "smtp; 550 5.1.1 <user@example.org>... User unknown", or ""
	LastAttempt time.Time // zero: not written
	// WillRetryUntil is written for delayed recipients when not zero.
	WillRetryUntil time.Time
}

// DSNInput is what NewDSN reports on.
type DSNInput struct {
	ReportingMTA string // host name of this MTA
	From         string // postmaster@reporting host
	To           string // the original return path (MAIL FROM)
	EnvID        string // ENVID given with MAIL FROM, or ""
	Ret          string // RET given with MAIL FROM: "FULL" returns the message, anything else its header
	// OriginalHeaders is the header block of the returned message;
	// OriginalBody its body (used with RET=FULL). When OriginalBody is
	// nil and OriginalHeaders holds a whole message, the header is cut
	// from it.
	OriginalHeaders []byte
	OriginalBody    []byte
	Recipients      []DSNRecipient
	Arrival         time.Time // when the message was received; zero: not written
	MessageID       string    // Message-ID of the DSN itself; "" makes one
	Date            time.Time // Date of the DSN; zero: now
}

// NewDSN writes an RFC 3464 delivery status notification: a
// multipart/report (RFC 6522) of report-type delivery-status with a
// human-readable part, the message/delivery-status part, and the
// returned message as text/rfc822-headers (RET=HDRS, the default) or
// message/rfc822 (RET=FULL). Lines end in CRLF. The header carries
// From, To, Subject, Date, Message-ID, Auto-Submitted: auto-replied
// (RFC 3834) and MIME-Version. Field values are stripped of line breaks
// so that no input can add header fields.
func NewDSN(in DSNInput) []byte {
	date := in.Date
	if date.IsZero() {
		date = time.Now()
	}
	host := oneLine(in.ReportingMTA)
	if host == "" {
		host = "localhost"
	}
	from := oneLine(in.From)
	if from == "" {
		from = "postmaster@" + host
	}
	msgID := strings.Trim(oneLine(in.MessageID), "<>")
	if msgID == "" {
		var r [12]byte
		_, _ = rand.Read(r[:])
		msgID = hex.EncodeToString(r[:]) + "@" + host
	}
	origHeader, origBody := in.OriginalHeaders, in.OriginalBody
	if origBody == nil {
		if i := bytes.Index(origHeader, []byte("\n\n")); i >= 0 {
			origHeader, origBody = origHeader[:i+1], origHeader[i+2:]
		} else if i := bytes.Index(origHeader, []byte("\r\n\r\n")); i >= 0 {
			origHeader, origBody = origHeader[:i+2], origHeader[i+4:]
		}
	}
	full := strings.EqualFold(strings.TrimSpace(in.Ret), "FULL")

	failed, delayed := 0, 0
	for _, r := range in.Recipients {
		switch strings.ToLower(r.Action) {
		case "delayed":
			delayed++
		case "failed", "":
			failed++
		}
	}
	subject := "Undelivered Mail Returned to Sender"
	if failed == 0 && delayed > 0 {
		subject = "Delayed Mail (still being retried)"
	}

	sum := sha256.Sum256([]byte(msgID))
	boundary := "=_drover_" + hex.EncodeToString(sum[:10])

	var b bytes.Buffer
	hdr := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, foldField(len(name)+2, value)) }
	hdr("From", "Mail Delivery System <"+from+">")
	hdr("To", "<"+strings.Trim(oneLine(in.To), "<>")+">")
	hdr("Subject", subject)
	hdr("Date", date.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+msgID+">")
	hdr("Auto-Submitted", "auto-replied")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	b.WriteString("\r\nThis is a MIME-encapsulated message.\r\n\r\n")

	// Human-readable part.
	fmt.Fprintf(&b, "--%s\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	fmt.Fprintf(&b, "This is the mail system at host %s.\r\n\r\n", host)
	if failed > 0 {
		b.WriteString("Your message could not be delivered to one or more recipients.\r\n")
		b.WriteString("It has been returned below. This is a permanent error.\r\n")
	} else {
		b.WriteString("Your message has not been delivered to one or more recipients yet.\r\n")
		b.WriteString("Delivery will be retried; you do not need to resend the message.\r\n")
	}
	b.WriteString("\r\n")
	for _, r := range in.Recipients {
		fmt.Fprintf(&b, "<%s>: %s\r\n", oneLine(r.Addr), humanReason(r))
	}
	b.WriteString("\r\n")

	// Machine-readable part.
	fmt.Fprintf(&b, "--%s\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	hdr("Reporting-MTA", "dns; "+host)
	if in.EnvID != "" {
		hdr("Original-Envelope-Id", oneLine(in.EnvID))
	}
	if !in.Arrival.IsZero() {
		hdr("Arrival-Date", in.Arrival.Format(time.RFC1123Z))
	}
	for _, r := range in.Recipients {
		b.WriteString("\r\n")
		if r.ORCPT != "" {
			orcpt := oneLine(r.ORCPT)
			if !strings.Contains(orcpt, ";") {
				orcpt = "rfc822; " + orcpt
			}
			hdr("Original-Recipient", orcpt)
		}
		hdr("Final-Recipient", "rfc822; "+oneLine(r.Addr))
		action := strings.ToLower(oneLine(r.Action))
		if action == "" {
			action = "failed"
		}
		hdr("Action", action)
		status := oneLine(r.Status)
		if status == "" {
			status = "5.0.0"
			if action == "delayed" {
				status = "4.0.0"
			}
		}
		hdr("Status", status)
		if r.RemoteMTA != "" {
			hdr("Remote-MTA", "dns; "+oneLine(r.RemoteMTA))
		}
		if r.Diagnostic != "" {
			d := oneLine(r.Diagnostic)
			if t, _, ok := strings.Cut(d, ";"); !ok || strings.ContainsAny(strings.TrimSpace(t), " \t") {
				d = "smtp; " + d
			}
			hdr("Diagnostic-Code", d)
		}
		if !r.LastAttempt.IsZero() {
			hdr("Last-Attempt-Date", r.LastAttempt.Format(time.RFC1123Z))
		}
		if action == "delayed" && !r.WillRetryUntil.IsZero() {
			hdr("Will-Retry-Until", r.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	b.WriteString("\r\n")

	// The returned message or its header.
	if full {
		fmt.Fprintf(&b, "--%s\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n", boundary)
		b.Write(crlf(origHeader))
		if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
			b.WriteString("\r\n")
		}
		b.WriteString("\r\n")
		b.Write(crlf(origBody))
	} else {
		fmt.Fprintf(&b, "--%s\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
		b.Write(crlf(bytes.TrimRight(origHeader, "\r\n")))
		b.WriteString("\r\n")
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

// humanReason is the line of the human-readable part about r.
func humanReason(r DSNRecipient) string {
	d := oneLine(r.Diagnostic)
	if t, rest, ok := strings.Cut(d, ";"); ok && !strings.ContainsAny(strings.TrimSpace(t), " \t") {
		d = strings.TrimSpace(rest)
	}
	var s string
	switch {
	case r.RemoteMTA != "" && d != "":
		s = "host " + oneLine(r.RemoteMTA) + " said: " + d
	case d != "":
		s = d
	case strings.EqualFold(r.Action, "delayed"):
		s = "delivery delayed (status " + oneLine(r.Status) + ")"
	default:
		s = "delivery failed (status " + oneLine(r.Status) + ")"
	}
	return s
}

// oneLine removes line breaks and surrounding blanks.
func oneLine(s string) string {
	s = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
	return strings.TrimSpace(s)
}

// foldField folds a header value at blanks so that lines stay under 78
// characters where possible (RFC 5322 2.2.3); start is the length of
// "Name: ".
func foldField(start int, v string) string {
	if start+len(v) <= 78 {
		return v
	}
	var b strings.Builder
	col := start
	for i, w := range strings.Split(v, " ") {
		if i > 0 {
			if col+1+len(w) > 78 && col > 1 {
				b.WriteString("\r\n ")
				col = 1
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

// crlf turns bare LF and bare CR line ends into CRLF.
func crlf(b []byte) []byte {
	n := normalize(append([]byte("X"), b...))[1:] // normalize would drop a leading "From " line
	return bytes.ReplaceAll(n, []byte("\n"), []byte("\r\n"))
}
