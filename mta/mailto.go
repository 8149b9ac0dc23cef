package mta

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/url"
	"strings"

	"drover/mta/smtperr"
	"drover/policy"
)

// The unsubscribe mailbox of the inbound listener: the mailto target of
// List-Unsubscribe (policy.Links), unsubscribe@ each bounce domain. The
// message is read with the standard library's MIME packages (mime,
// mime/multipart, mime/quotedprintable); only finding the token in the
// words is ours.

// sourceMailto is the source of an unsubscribe by mail (policy.Entry).
const sourceMailto = "mailto"

// takesUnsubscribe reports whether the listener takes the unsubscribe
// mailbox.
func (in *Inbound) takesUnsubscribe() bool {
	return in.cfg.Tokens != nil && in.cfg.Unsubscriber != nil
}

// unsubscribe handles a message to the unsubscribe mailbox: the token
// its Subject carries ("unsubscribe TOKEN" or TOKEN; else its first
// non-empty text line does) is opened and the recipient it names is
// unsubscribed. A message without a token that opens is accepted and
// logged: nobody is told by mail. A store error gets 451 4.3.0, so that
// the sender's MTA tries again.
func (in *Inbound) unsubscribe(raw []byte, from string) error {
	log := in.cfg.Logger
	toks := mailtoTokens(raw)
	if len(toks) == 0 {
		log.Info("inbound: unsubscribe mail without a token: nothing done", "from", from)
		return nil
	}
	var r policy.Recipient
	var firstErr error
	for _, tok := range toks {
		var err error
		if r, err = in.cfg.Tokens.Open(tok, in.cfg.Now()); err == nil {
			firstErr = nil
			break
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		log.Info("inbound: unsubscribe mail with a token that does not open: nothing done", "from", from, "reason", firstErr)
		return nil
	}
	if err := in.cfg.Unsubscriber.Unsubscribe(r, sourceMailto); err != nil {
		log.Error("inbound: unsubscribe by mail not recorded", "sender", r.Sender, "list", r.List, "msg", r.MsgID, "err", err)
		return &smtperr.Error{Code: 451, Enhanced: "4.3.0", Message: "Unsubscribe not recorded: local policy store error, try again later", Err: err}
	}
	log.Info("inbound: unsubscribed by mail", "sender", r.Sender, "list", r.List, "msg", r.MsgID)
	return nil
}

// mailtoTokens are the tokens a message to the unsubscribe mailbox may
// carry, in the order to try them: its Subject's (RFC 2047 decoded),
// then its first non-empty text line's.
func mailtoTokens(raw []byte) []string {
	fields, body := splitHeader(normalizeCRLF(raw))
	var toks []string
	var ctype, cte string
	subject := false
	for _, f := range fields {
		switch {
		case f.is("Subject") && !subject:
			subject = true
			if tok := tokenIn(decodeWords(f.value())); tok != "" {
				toks = append(toks, tok)
			}
		case f.is("Content-Type"):
			ctype = f.value()
		case f.is("Content-Transfer-Encoding"):
			cte = f.value()
		}
	}
	if tok := tokenIn(firstTextLine(ctype, cte, body, 0)); tok != "" && (len(toks) == 0 || toks[0] != tok) {
		toks = append(toks, tok)
	}
	return toks
}

// decodeWords decodes the encoded words (RFC 2047) of a field value; a
// value it cannot decode is used as it is.
func decodeWords(v string) string {
	if d, err := new(mime.WordDecoder).DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// tokenIn is the token of "unsubscribe TOKEN" or "TOKEN" (also with the
// space percent-encoded, as in the mailto URL), or "".
func tokenIn(s string) string {
	if strings.Contains(s, "%") {
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
	}
	words := strings.Fields(s)
	if len(words) > 0 && strings.EqualFold(strings.TrimSuffix(words[0], ":"), policy.MailtoLocal) {
		words = words[1:]
	}
	if len(words) != 1 {
		return ""
	}
	return words[0]
}

// maxMIMEDepth bounds the nesting of multipart bodies looked into.
const maxMIMEDepth = 4

// firstTextLine is the first non-empty line of the first text/plain part
// of a body of type ctype (text/plain when "") and transfer encoding cte.
func firstTextLine(ctype, cte string, body []byte, depth int) string {
	mediatype, params, err := mime.ParseMediaType(ctype)
	if ctype == "" || err != nil {
		mediatype = "text/plain"
	}
	switch {
	case strings.HasPrefix(mediatype, "multipart/"):
		if depth >= maxMIMEDepth || params["boundary"] == "" {
			return ""
		}
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return ""
			}
			b, err := io.ReadAll(p)
			if err != nil {
				return ""
			}
			if line := firstTextLine(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), b, depth+1); line != "" {
				return line
			}
		}
	case mediatype == "text/plain":
		for line := range strings.SplitSeq(string(decodeTransfer(cte, body)), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				return line
			}
		}
	}
	return ""
}

// decodeTransfer undoes a quoted-printable or base64 transfer encoding;
// a body it cannot decode is used as it is.
func decodeTransfer(cte string, body []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		if d, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
			return d
		}
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, body)
		if d, err := base64.StdEncoding.DecodeString(string(clean)); err == nil {
			return d
		}
	}
	return body
}
