package bounce

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// addCorpusSeeds adds every sample of the corpus (and a CRLF copy of a
// few) to a fuzz target's seed corpus.
func addCorpusSeeds(f *testing.F) {
	paths, _ := filepath.Glob("testdata/corpus/emails/*.eml")
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if i%20 == 0 {
			f.Add(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
		}
	}
}

// FuzzParseMessage: no input panics, and every result is well formed.
func FuzzParseMessage(f *testing.F) {
	addCorpusSeeds(f)
	f.Add([]byte("Content-Type: multipart/report; boundary=x\n\n--x\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@b.c\nStatus: 5.1.1\n--x--\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := ParseMessage(raw)
		if err != nil && res != nil {
			t.Fatal("results with an error")
		}
		for _, c := range res {
			if c.Reason == "" || !isReason(c.Reason) {
				t.Fatalf("reason %q", c.Reason)
			}
			if c.Class != "" && c.Class != "hard" && c.Class != "soft" {
				t.Fatalf("class %q", c.Class)
			}
			if c.Recipient == "" {
				t.Fatal("empty recipient")
			}
		}
	})
}

// FuzzParseDSN fuzzes the delivery-status field reader.
func FuzzParseDSN(f *testing.F) {
	f.Add("Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; a@b.c\nAction: failed\nStatus: 5.1.1 (x)\nDiagnostic-Code: smtp; 550\n  5.1.1 no\n")
	f.Add("Final-Recipient: rfc822; <@r.example:a@b.c>\nFinal-Recipient: x\n\n\nOriginal-Recipient:")
	f.Fuzz(func(t *testing.T, s string) {
		rep := parseDSN(s)
		for _, r := range rep.recipients {
			_ = dsnAddress(r)
			_ = statusComment(r.status)
		}
	})
}

// FuzzReply fuzzes classification of synchronous replies.
func FuzzReply(f *testing.F) {
	f.Add("RCPT", 550, "5.1.1", "User unknown", "mx.example.org")
	f.Add("DATA", 451, "", "550-5.7.1 a\n550 5.7.1 b", "")
	cl := NewClassifier(nil)
	f.Fuzz(func(t *testing.T, cmd string, code int, enh, text, host string) {
		c := cl.Classify(Reply{Command: cmd, Code: code, Enhanced: enh, Text: text, RemoteMTA: host})
		if !isReason(c.Reason) {
			t.Fatalf("reason %q", c.Reason)
		}
	})
}

// FuzzVERPDecode: no token panics, and only tokens made with the key
// decode.
func FuzzVERPDecode(f *testing.F) {
	v := VERP{Key: []byte("fuzz key")}
	f.Add(v.Encode("0f1e2d3c", 3, "news", "b.example.org"))
	f.Add("bounces+aaaa@x")
	f.Add("<bounces+@>")
	f.Fuzz(func(t *testing.T, addr string) {
		id, idx, sender, err := v.Decode(addr)
		if err != nil {
			return
		}
		// A decoded address must re-encode to the same token.
		again := v.Encode(id, idx, sender, "d")
		if _, _, _, err := v.Decode(again); err != nil {
			t.Fatalf("re-encoded token rejected: %v", err)
		}
	})
}

// TestHostileMessages: deeply nested, very wide and very large messages
// are read within the limits, quickly and without panicking.
func TestHostileMessages(t *testing.T) {
	var nested strings.Builder
	for i := 0; i < 5000; i++ {
		nested.WriteString("Content-Type: multipart/mixed; boundary=b" + itoa(i) + "\n\n--b" + itoa(i) + "\n")
	}
	nested.WriteString("Content-Type: text/plain\n\n<a@example.org>: 550 5.1.1 user unknown\n")
	var wide strings.Builder
	wide.WriteString("From: MAILER-DAEMON@example.org\nSubject: Undelivered\nContent-Type: multipart/mixed; boundary=x\n\n")
	for i := 0; i < 100000; i++ {
		wide.WriteString("--x\nContent-Type: text/plain\n\n<u" + itoa(i) + "@example.org>: 550 5.1.1 user unknown\n")
	}
	var fields strings.Builder
	fields.WriteString("From: MAILER-DAEMON@example.org\n")
	for i := 0; i < 200000; i++ {
		fields.WriteString("X-F: " + strings.Repeat("y", 20) + "\n")
	}
	fields.WriteString("\n")
	big := "From: MAILER-DAEMON@example.org\nSubject: Undelivered\n\n<a@example.org>: 550 5.1.1 " + strings.Repeat("user unknown ", 2<<20) + "\n"
	long := "From: MAILER-DAEMON@example.org\nSubject: x\n\n" + strings.Repeat("a", 12<<20)
	folded := "Subject: x\n" + strings.Repeat(" y\n", 1<<20) + "\n"
	for name, msg := range map[string]string{"nested": nested.String(), "wide": wide.String(), "fields": fields.String(),
		"big": big, "long": long, "folded": folded} {
		start := time.Now()
		res, _ := ParseMessage([]byte(msg))
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: %v", name, d)
		}
		if name == "wide" && len(res) > maxParts {
			t.Errorf("wide: %d recipients from more parts than maxParts", len(res))
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
