package mta

import (
	"bytes"
	"fmt"
	"html"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"drover/queue"
)

// ConfirmTemplate is a sender's double opt-in confirmation message: its
// From address, and its subject and text and HTML bodies per language
// (BCP 47 tags as the web pages name them; "en" is the fallback). Texts
// hold {list}, {sender} and {link}, the confirmation page's URL.
type ConfirmTemplate struct {
	From    string
	Subject map[string]string
	Text    map[string]string
	HTML    map[string]string
}

// Confirmations queues double opt-in confirmation messages: Drover's own
// transactional mail (stream "transactional", flow "double-opt-in"),
// signed like any message of the sender's From domain and delivered
// through the normal queue, so its bounces and its shaping are those of
// the sender's other mail.
type Confirmations struct {
	Hostname  string
	Queue     Enqueuer
	Signer    Signer                      // nil: unsigned
	Templates map[string]*ConfirmTemplate // by sender
	OnEvent   func(queue.Event)
	Now       func() time.Time
}

// Send queues the confirmation of addr's sign-up to sender's list, in
// lang (else English), linking to url. It returns the queue ID.
func (c *Confirmations) Send(sender, list, addr, lang, url string) (string, error) {
	tpl := c.Templates[sender]
	if tpl == nil {
		return "", fmt.Errorf("sender %s has no double opt-in template", sender)
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	fill := func(texts map[string]string, escape func(string) string) string {
		t, ok := texts[lang]
		if !ok {
			t = texts["en"]
		}
		return strings.NewReplacer("{list}", escape(list), "{sender}", escape(sender), "{link}", escape(url)).Replace(t)
	}
	plain := func(s string) string { return s }
	msg, err := confirmMessage(tpl.From, addr, fill(tpl.Subject, plain), fill(tpl.Text, plain), fill(tpl.HTML, html.EscapeString),
		"<"+randomToken()+"@"+c.Hostname+">", now)
	if err != nil {
		return "", err
	}
	from, err := mail.ParseAddress(tpl.From)
	if err != nil {
		return "", fmt.Errorf("sender %s: confirmation From %q: %w", sender, tpl.From, err)
	}
	if c.Signer != nil {
		domain := strings.ToLower(from.Address[strings.LastIndexByte(from.Address, '@')+1:])
		sig, err := c.Signer.Sign(domain, msg)
		if err != nil {
			return "", fmt.Errorf("signing the confirmation: %w", err)
		}
		msg = append(sig, msg...)
	}
	m := &queue.Message{Sender: sender, ReturnPath: from.Address, Stream: "transactional", List: list, Flow: "double-opt-in", Received: now}
	rcpts := []queue.NewRecipient{{Addr: addr}}
	id, err := c.Queue.Enqueue(m, rcpts, msg)
	if err != nil {
		return "", err
	}
	if c.OnEvent != nil {
		c.OnEvent(queue.Event{Kind: queue.EventReceived, Time: now, MsgID: id, Sender: sender, ReturnPath: from.Address,
			Recipients: 1, RecipientAddrs: []string{addr}, Size: len(msg), Stream: m.Stream, List: list, Flow: m.Flow})
	}
	return id, nil
}

// confirmMessage is the message: multipart/alternative of the text and
// the HTML, both UTF-8 in quoted-printable, with CRLF line ends.
func confirmMessage(from, to, subject, text, htmlBody, messageID string, now time.Time) ([]byte, error) {
	for _, h := range []string{from, to, subject} {
		if strings.ContainsAny(h, "\r\n") {
			return nil, fmt.Errorf("confirmation: a header value holds a line break")
		}
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ ctype, text string }{{"text/plain", text}, {"text/html", htmlBody}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		qp.Write([]byte(normalizeCRLF([]byte(part.text))))
		qp.Close()
	}
	mw.Close()
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/alternative; boundary=%q\r\nAuto-Submitted: auto-generated\r\n\r\n",
		from, to, mime.QEncoding.Encode("utf-8", subject), now.Format(time.RFC1123Z), messageID, mw.Boundary())
	b.Write(body.Bytes())
	return normalizeCRLF(b.Bytes()), nil
}
