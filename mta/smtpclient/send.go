package smtpclient

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Rcpt is one recipient of a transaction.
type Rcpt struct {
	Addr   string   // address, without angle brackets
	Params []string // RCPT parameters such as "NOTIFY=FAILURE" or "ORCPT=rfc822;a@example.com" (already xtext-encoded)
}

// SendResult holds the replies of one transaction.
type SendResult struct {
	Mail  Reply   // the reply to MAIL FROM
	Rcpts []Reply // the replies to RCPT TO, one per recipient, in order; Code 0 where none was received
	// Data is the reply that decided the fate of the accepted recipients:
	// the reply to the end of the data (250 when the message was taken),
	// or the refusal of the DATA command itself. Code 0 when DATA was not
	// reached (MAIL failed, no recipient accepted) or the connection broke
	// before the reply came.
	Data Reply
}

// pipelineWindow is the largest number of commands written before their
// replies are read. It keeps the replies waiting in the socket buffers small
// (100 replies of at most 512 bytes), so a server that stops reading while
// its replies are not read cannot deadlock the session.
const pipelineWindow = 100

// Send runs one mail transaction: MAIL FROM:<from> with mailParams, RCPT
// TO for each of rcpts, and DATA with body when at least one recipient was
// accepted. from may be "" (the null reverse-path). See the package doc for
// the parameters the client drops and for what an error means.
func (c *Client) Send(ctx context.Context, from string, mailParams []string, rcpts []Rcpt, body []byte) (SendResult, error) {
	if c.err != nil {
		return SendResult{}, c.err
	}
	if err := checkEnvelope(from, mailParams, rcpts); err != nil {
		return SendResult{}, err
	}
	res := SendResult{Rcpts: make([]Reply, len(rcpts))}
	defer c.watch(ctx)()
	if err := c.setDeadline(ctx, c.cfg.CommandTimeout); err != nil {
		return res, err
	}
	var err error
	if c.has("PIPELINING") {
		err = c.pipelined(ctx, from, mailParams, rcpts, &res)
	} else {
		err = c.stepwise(ctx, from, mailParams, rcpts, &res)
	}
	if err != nil {
		return res, err
	}
	accepted := 0
	for _, r := range res.Rcpts {
		if r.Code/100 == 2 {
			accepted++
		}
	}
	switch {
	case res.Data.Code == 354 && (accepted == 0 || res.Mail.Code/100 != 2):
		// A pipelined DATA was accepted although there is nothing to
		// deliver: RFC 2920 3.1 says to send an empty message.
		res.Data = Reply{}
		c.w.WriteString(".\r\n")
		_, err := c.flushRead(ctx, "DATA", c.cfg.DataTimeout)
		return res, err
	case res.Mail.Code/100 != 2:
		return res, nil // no transaction was started
	case res.Data.Code != 354:
		return res, c.reset(ctx)
	}
	res.Data = Reply{}
	if err := c.setDeadline(ctx, c.cfg.DataTimeout); err != nil {
		return res, c.broken(err)
	}
	writeData(c.w, body)
	res.Data, err = c.flushRead(ctx, "DATA", c.cfg.DataTimeout)
	return res, err
}

// pipelined writes the commands in groups of at most pipelineWindow and
// reads the replies of each group after writing it.
func (c *Client) pipelined(ctx context.Context, from string, mailParams []string, rcpts []Rcpt, res *SendResult) error {
	total := len(rcpts) + 2 // MAIL, the RCPTs, DATA
	for written, read := 0, 0; read < total; {
		for ; written < total && written-read < pipelineWindow; written++ {
			c.writeTxCommand(written, from, mailParams, rcpts)
		}
		if err := c.w.Flush(); err != nil {
			return c.ioError(ctx, "MAIL", err)
		}
		for ; read < written; read++ {
			if err := c.setDeadline(ctx, c.cfg.CommandTimeout); err != nil {
				return c.broken(err)
			}
			name, slot := txSlot(read, res)
			rep, err := c.readReply(nil)
			if err != nil {
				return c.ioError(ctx, name, err)
			}
			*slot = rep
			if rep.Code == 421 {
				return c.broken(&Error{Command: name, Reply: rep})
			}
		}
	}
	return nil
}

// stepwise sends the commands one at a time.
func (c *Client) stepwise(ctx context.Context, from string, mailParams []string, rcpts []Rcpt, res *SendResult) error {
	total := len(rcpts) + 2
	accepted := 0
	for i := 0; i < total; i++ {
		if i == total-1 && accepted == 0 {
			return nil // no recipient: no DATA
		}
		c.writeTxCommand(i, from, mailParams, rcpts)
		name, slot := txSlot(i, res)
		rep, err := c.flushRead(ctx, name, c.cfg.CommandTimeout)
		*slot = rep
		if err != nil {
			return err
		}
		switch {
		case i == 0 && rep.Code/100 != 2:
			return nil // MAIL refused
		case i > 0 && rep.Code/100 == 2:
			accepted++
		}
	}
	return nil
}

// flushRead flushes what was written, reads one reply and treats 421 as the
// end of the session.
func (c *Client) flushRead(ctx context.Context, name string, timeout time.Duration) (Reply, error) {
	if err := c.setDeadline(ctx, timeout); err != nil {
		return Reply{}, c.broken(err)
	}
	if err := c.w.Flush(); err != nil {
		return Reply{}, c.ioError(ctx, name, err)
	}
	rep, err := c.readReply(nil)
	if err != nil {
		return Reply{}, c.ioError(ctx, name, err)
	}
	if rep.Code == 421 {
		return rep, c.broken(&Error{Command: name, Reply: rep})
	}
	return rep, nil
}

// txSlot names the i-th command of a transaction (MAIL, the RCPTs, DATA)
// and returns where its reply goes.
func txSlot(i int, res *SendResult) (string, *Reply) {
	switch {
	case i == 0:
		return "MAIL", &res.Mail
	case i <= len(res.Rcpts):
		return "RCPT", &res.Rcpts[i-1]
	}
	return "DATA", &res.Data
}

// writeTxCommand buffers the i-th command of a transaction.
func (c *Client) writeTxCommand(i int, from string, mailParams []string, rcpts []Rcpt) {
	switch {
	case i == 0:
		c.w.WriteString("MAIL FROM:<")
		c.w.WriteString(from)
		c.w.WriteByte('>')
		c.writeParams(mailParams)
	case i <= len(rcpts):
		c.w.WriteString("RCPT TO:<")
		c.w.WriteString(rcpts[i-1].Addr)
		c.w.WriteByte('>')
		c.writeParams(rcpts[i-1].Params)
	default:
		c.w.WriteString("DATA")
	}
	c.w.WriteString("\r\n")
}

// writeParams buffers the parameters the server announced support for.
func (c *Client) writeParams(params []string) {
	for _, p := range params {
		kw, _, _ := strings.Cut(p, "=")
		if ext := paramExtension(kw); ext != "" && !c.has(ext) {
			continue
		}
		c.w.WriteByte(' ')
		c.w.WriteString(p)
	}
}

// paramExtension returns the EHLO keyword that MAIL or RCPT parameter kw
// needs, or "" for parameters the client sends as given.
func paramExtension(kw string) string {
	switch {
	case strings.EqualFold(kw, "BODY"):
		return "8BITMIME"
	case strings.EqualFold(kw, "SMTPUTF8"):
		return "SMTPUTF8"
	case strings.EqualFold(kw, "SIZE"):
		return "SIZE"
	case strings.EqualFold(kw, "RET"), strings.EqualFold(kw, "ENVID"),
		strings.EqualFold(kw, "NOTIFY"), strings.EqualFold(kw, "ORCPT"):
		return "DSN"
	}
	return ""
}

// checkEnvelope refuses what cannot be written into a command line safely.
func checkEnvelope(from string, mailParams []string, rcpts []Rcpt) error {
	if len(rcpts) == 0 {
		return fmt.Errorf("%w: no recipients", ErrInvalidInput)
	}
	if hasControl(from) {
		return fmt.Errorf("%w: sender %q", ErrInvalidInput, from)
	}
	if err := checkParams(mailParams); err != nil {
		return err
	}
	for _, r := range rcpts {
		if r.Addr == "" || hasControl(r.Addr) {
			return fmt.Errorf("%w: recipient %q", ErrInvalidInput, r.Addr)
		}
		if err := checkParams(r.Params); err != nil {
			return err
		}
	}
	return nil
}

func checkParams(params []string) error {
	for _, p := range params {
		if p == "" || p[0] == '=' || strings.ContainsRune(p, ' ') || hasControl(p) {
			return fmt.Errorf("%w: parameter %q", ErrInvalidInput, p)
		}
	}
	return nil
}

// hasControl reports whether s has an ASCII control character (CR and LF
// among them), which would end or corrupt a command line.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
