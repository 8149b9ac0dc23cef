package mta

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"drover/queue"
)

type recordingSigner struct{ domains []string }

func (s *recordingSigner) Sign(domain string, msg []byte) ([]byte, error) {
	s.domains = append(s.domains, domain)
	return []byte("DKIM-Signature: v=1; d=" + domain + "\r\n"), nil
}

// A confirmation is a transactional message of the sender, signed for
// its From domain, in the sign-up's language (English when the template
// has none), its link in both parts, escaped in the HTML; its subject is
// encoded, its lines end in CRLF.
func TestConfirmationMessage(t *testing.T) {
	q := &fakeQueue{}
	signer := &recordingSigner{}
	var evs []queue.Event
	c := &Confirmations{Hostname: "drover.test", Queue: q, Signer: signer, OnEvent: func(ev queue.Event) { evs = append(evs, ev) },
		Now: func() time.Time { return time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC) },
		Templates: map[string]*ConfirmTemplate{"shop": {
			From:    "News <news@Shop.test>",
			Subject: map[string]string{"en": "Confirm your subscription to {list}", "zh-Hans": "请确认订阅 {list}"},
			Text:    map[string]string{"en": "Confirm: {link}\nThanks, {sender}", "zh-Hans": "确认：{link}"},
			HTML:    map[string]string{"en": `<p><a href="{link}">Confirm</a> {list}</p>`},
		}}}
	url := "https://u.test/c/TOKEN?a=1&b=2"
	for _, tc := range []struct{ lang, subject, text, html string }{
		{"en", "Confirm your subscription to spring <news>", "Confirm: " + url + "\r\nThanks, shop", `<p><a href="https://u.test/c/TOKEN?a=1&amp;b=2">Confirm</a> spring &lt;news&gt;</p>`},
		{"zh-Hans", "请确认订阅 spring <news>", "确认：" + url, `<p><a href="https://u.test/c/TOKEN?a=1&amp;b=2">Confirm</a> spring &lt;news&gt;</p>`},
		{"fr", "Confirm your subscription to spring <news>", "Confirm: " + url + "\r\nThanks, shop", ""},
	} {
		id, err := c.Send("shop", "spring <news>", "ann@dest.test", tc.lang, url)
		if err != nil {
			t.Fatal(err)
		}
		msg, rcpts, body := q.last(t)
		if id != msg.ID || msg.Stream != "transactional" || msg.Flow != "double-opt-in" || msg.List != "spring <news>" || rcpts[0].Addr != "ann@dest.test" {
			t.Errorf("%s: queued %+v %v", tc.lang, msg, rcpts)
		}
		if strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\r") {
			t.Errorf("%s: a bare line end", tc.lang)
		}
		if !strings.HasPrefix(body, "DKIM-Signature: v=1; d=shop.test\r\n") {
			t.Errorf("%s: not signed for shop.test:\n%s", tc.lang, body)
		}
		m, err := mail.ReadMessage(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if subject != tc.subject {
			t.Errorf("%s: subject %q", tc.lang, subject)
		}
		_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
		mr := multipart.NewReader(m.Body, params["boundary"])
		var parts []string
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(p) // NextPart decodes quoted-printable
			parts = append(parts, string(bytes.TrimSpace(b)))
		}
		if len(parts) != 2 || parts[0] != tc.text || (tc.html != "" && parts[1] != tc.html) {
			t.Errorf("%s: parts %q", tc.lang, parts)
		}
	}
	if len(evs) != 3 || evs[0].Kind != queue.EventReceived || evs[0].Flow != "double-opt-in" {
		t.Errorf("events %+v", evs)
	}
	if _, err := c.Send("other", "l", "a@b.test", "en", url); err == nil {
		t.Error("a sender without a template sent a confirmation")
	}
	c.Templates["shop"].Subject["en"] = "Confirm\r\nBcc: x@evil.test"
	if _, err := c.Send("shop", "l", "a@b.test", "en", url); err == nil {
		t.Error("a subject with a line break was sent")
	}
}
