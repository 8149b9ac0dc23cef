package mta

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/prometheus/client_golang/prometheus"

	"drover/mta/dkim"
	"drover/policy"
	"drover/queue"
	"drover/queue/engine"
)

// fakePolicy is a suppression list: an entry applies to its address
// (compared as policy.Normalize does) everywhere (global), for its
// sender (sender), or for its sender's list (list). The senders in drop
// want suppressed recipients dropped. It records every check.
type fakePolicy struct {
	mu      sync.Mutex
	entries []policy.Entry
	drop    map[string]bool
	err     error
	calls   []checkCall
}

type checkCall struct{ sender, stream, list, addr string }

func (f *fakePolicy) Check(sender, stream, list, addr string) (policy.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, checkCall{sender, stream, list, addr})
	if f.err != nil {
		return policy.Decision{}, f.err
	}
	for _, e := range f.entries {
		if policy.Normalize(e.Address) != policy.Normalize(addr) {
			continue
		}
		if e.Kind == policy.Global || e.Sender == sender && (e.Kind == policy.PerSender || e.List == list) {
			return policy.Decision{Suppressed: true, Entry: e, Drop: f.drop[sender]}, nil
		}
	}
	return policy.Decision{}, nil
}

func (f *fakePolicy) checked() []checkCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// unsubscribedFrom is an unsubscribe of addr from sender app's list.
func unsubscribedFrom(addr, list string) policy.Entry {
	return policy.Entry{Address: addr, Scope: policy.Scope{Kind: policy.PerList, Sender: "app", List: list},
		Reason: policy.Unsubscribed, Source: "one-click", Time: time.Unix(1700000000, 0)}
}

// hygieneServer is a submission server with a policy, on one plain
// loopback listener whose loopback sender is the first sender; sender
// "shop" logs in.
type hygieneServer struct {
	q      *fakeQueue
	events *eventRecorder
	reg    *prometheus.Registry
	addr   string
}

func startHygiene(t *testing.T, cfg SubmissionConfig) *hygieneServer {
	t.Helper()
	q := &fakeQueue{}
	events := &eventRecorder{}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, func() queue.Stats { return queue.Stats{} }, func() []engine.SiteStatus { return nil })
	if cfg.Senders == nil {
		cfg.Senders = []*Sender{{Name: "app", FromDomains: []string{"app.example"}}}
	}
	cfg.Senders = append(cfg.Senders, &Sender{Name: "shop", Login: "shop", PasswordHash: shopHash(), FromDomains: []string{"shop.example"}})
	cfg.Hostname = "drover.test"
	cfg.Listeners = []Listener{{Address: "127.0.0.1:0", Mode: "plain", LoopbackSender: cfg.Senders[0].Name}}
	cfg.MaxMessageSize, cfg.MaxRecipients, cfg.MaxLineLength = 1<<20, 10, 2000
	cfg.Queue, cfg.OnEvent, cfg.Metrics = q, Fanout(events.add, metrics.Observe), metrics
	cfg.Logger = slog.New(slog.DiscardHandler)
	sub, err := NewSubmission(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := sub.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return &hygieneServer{q: q, events: events, reg: reg, addr: addrs[0].String()}
}

func (h *hygieneServer) queued() ([]*queue.Message, [][]queue.NewRecipient, []string) {
	h.q.mu.Lock()
	defer h.q.mu.Unlock()
	bodies := make([]string, len(h.q.bodies))
	for i, b := range h.q.bodies {
		bodies[i] = string(b)
	}
	return slices.Clone(h.q.msgs), slices.Clone(h.q.rcpts), bodies
}

func (d *dialog) expectText(cmd string, code int, text string) {
	d.t.Helper()
	if got := d.expect(cmd, code); got != text {
		d.t.Errorf("%q: got %d %q, want %d %q", cmd, code, got, code, text)
	}
}

// A recipient unsubscribed from the list that MAIL names is refused at
// RCPT with the policy's words; on another list, or for another sender,
// it is accepted. The refusal is a rejected event with the entry's
// reason, scope and list, and is counted by reason.
func TestRcptRefusedWhenSuppressed(t *testing.T) {
	pol := &fakePolicy{entries: []policy.Entry{unsubscribedFrom("gone@dest.test", "spring-news")}}
	h := startHygiene(t, SubmissionConfig{Policy: pol})
	d := dial(t, h.addr)
	d.expect("EHLO client.test", 250)
	d.expect("MAIL FROM:<news@app.example> X-DROVER-LIST=spring-news", 250)
	d.expectText("RCPT TO:<Gone@DEST.test>", 550, "5.7.1 Recipient unsubscribed from list spring-news")
	d.expect("RCPT TO:<kept@dest.test>", 250)
	d.data("From: news@app.example\r\nSubject: spring\r\n\r\nhi\r\n", 250)
	msgs, rcpts, _ := h.queued()
	if len(msgs) != 1 || len(rcpts[0]) != 1 || rcpts[0][0].Addr != "kept@dest.test" || msgs[0].List != "spring-news" || msgs[0].Stream != "marketing" {
		t.Fatalf("queued %v %v, want one message of list spring-news to kept@dest.test", msgs, rcpts)
	}

	d.expect("MAIL FROM:<news@app.example> X-DROVER-LIST=autumn", 250)
	d.expect("RCPT TO:<gone@dest.test>", 250)
	d.expect("RSET", 250)
	shop := dial(t, h.addr)
	shop.expect("EHLO client.test", 250)
	shop.expect("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00shop\x00s3cret")), 235)
	shop.expect("MAIL FROM:<orders@shop.example> X-DROVER-LIST=spring-news", 250)
	shop.expect("RCPT TO:<gone@dest.test>", 250)

	want := []checkCall{
		{"app", "marketing", "spring-news", "Gone@dest.test"}, // canonical: domain in lower case
		{"app", "marketing", "spring-news", "kept@dest.test"},
		{"app", "marketing", "autumn", "gone@dest.test"},
		{"shop", "marketing", "spring-news", "gone@dest.test"},
	}
	if got := pol.checked(); !slices.Equal(got, want) {
		t.Errorf("checks\n%v\nwant\n%v", got, want)
	}
	lines := h.events.lines(t, queue.EventRejected)
	if len(lines) != 1 {
		t.Fatalf("rejected lines: %v", lines)
	}
	for k, v := range map[string]any{"command": "RCPT", "rcpt": "Gone@DEST.test", "code": 550.0, "status": "5.7.1", "sender": "app",
		"reason": "unsubscribed", "scope": "list", "list": "spring-news", "stream": "marketing", "source": "one-click",
		"reply": "Recipient unsubscribed from list spring-news", "client_ip": "127.0.0.1", "helo": "client.test"} {
		if lines[0][k] != v {
			t.Errorf("%s = %v, want %v in %s", k, lines[0][k], v, lines[0]["json"])
		}
	}
	if got := counterWith(t, h.reg, "drover_policy_refusals_total", map[string]string{"reason": "unsubscribed"}); got != 1 {
		t.Errorf("drover_policy_refusals_total{reason=unsubscribed} = %v, want 1", got)
	}
	if got := counterWith(t, h.reg, "drover_policy_refusals_total", map[string]string{"reason": "complaint"}); got != 0 {
		t.Errorf("drover_policy_refusals_total{reason=complaint} = %v, want 0 (pre-created)", got)
	}
}

// A sender whose suppressed recipients are dropped gets 250 for them at
// RCPT; they are taken out of the message with a suppressed event each,
// and a message left with no recipient is acknowledged without being
// queued.
func TestSuppressedRecipientDropped(t *testing.T) {
	global := policy.Entry{Address: "trap@dest.test", Scope: policy.Scope{Kind: policy.Global}, Reason: policy.SpamTrap, Source: "admin"}
	pol := &fakePolicy{entries: []policy.Entry{unsubscribedFrom("gone@dest.test", "spring-news"), global}, drop: map[string]bool{"app": true}}
	h := startHygiene(t, SubmissionConfig{Policy: pol})
	d := dial(t, h.addr)
	d.expect("EHLO client.test", 250)
	d.expect("MAIL FROM:<news@app.example> X-DROVER-LIST=spring-news", 250)
	d.expect("RCPT TO:<gone@dest.test>", 250)
	d.expect("RCPT TO:<kept@dest.test>", 250)
	d.expect("RCPT TO:<trap@dest.test>", 250)
	if reply := d.data("From: news@app.example\r\nX-Drover-Campaign: spring-sale\r\nMessage-ID: <s1@app.example>\r\n\r\nhi\r\n", 250); !strings.Contains(reply, "queued as Q1") {
		t.Errorf("reply %q", reply)
	}
	msgs, rcpts, bodies := h.queued()
	if len(msgs) != 1 || len(rcpts[0]) != 1 || rcpts[0][0].Addr != "kept@dest.test" {
		t.Fatalf("queued %v, want one message to kept@dest.test only", rcpts)
	}
	if !strings.Contains(bodies[0], "\tfor <kept@dest.test>;") {
		t.Errorf("Received field does not name the one recipient left:\n%s", bodies[0])
	}
	lines := h.events.lines(t, queue.EventSuppressed)
	if len(lines) != 2 {
		t.Fatalf("suppressed lines: %v", lines)
	}
	for i, want := range []map[string]any{
		{"rcpt": "gone@dest.test", "reason": "unsubscribed", "scope": "list", "source": "one-click"},
		{"rcpt": "trap@dest.test", "reason": "spam-trap", "scope": "global", "source": "admin"},
	} {
		for k, v := range map[string]any{"sender": "app", "from": "news@app.example", "stream": "marketing", "campaign": "spring-sale",
			"list": "spring-news", "message_id": "<s1@app.example>", "client_ip": "127.0.0.1", "helo": "client.test"} {
			want[k] = v
		}
		for k, v := range want {
			if lines[i][k] != v {
				t.Errorf("suppressed line %d: %s = %v, want %v in %s", i, k, lines[i][k], v, lines[i]["json"])
			}
		}
	}
	if got := h.events.lines(t, queue.EventReceived); len(got) != 1 || got[0]["rcpts"] != 1.0 {
		t.Errorf("received lines: %v", got)
	}

	// Every recipient dropped: 250, nothing queued.
	d.expect("MAIL FROM:<news@app.example> X-DROVER-LIST=spring-news", 250)
	d.expect("RCPT TO:<gone@dest.test>", 250)
	d.expect("RCPT TO:<trap@dest.test>", 250)
	if reply := d.data("From: news@app.example\r\n\r\nhi\r\n", 250); reply != "2.0.0 OK: nothing queued, every recipient is suppressed" {
		t.Errorf("reply %q", reply)
	}
	if msgs, _, _ := h.queued(); len(msgs) != 1 {
		t.Errorf("%d messages queued, want the first only", len(msgs))
	}
	if got := len(h.events.lines(t, queue.EventSuppressed)); got != 4 {
		t.Errorf("%d suppressed lines, want 4", got)
	}
	if got := len(h.events.lines(t, queue.EventReceived)); got != 1 {
		t.Errorf("%d received lines, want 1", got)
	}
	for reason, want := range map[string]float64{"unsubscribed": 2, "spam-trap": 2, "complaint": 0} {
		if got := counterWith(t, h.reg, "drover_suppressed_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("drover_suppressed_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := counterWith(t, h.reg, "drover_policy_refusals_total", map[string]string{"reason": "unsubscribed"}); got != 0 {
		t.Errorf("dropped recipients counted as refusals: %v", got)
	}
}

// A header stream or list that disagrees with MAIL's gets 550 5.6.0
// naming both; one the header alone names makes DATA check the
// recipients again with it.
func TestHeaderStreamAndList(t *testing.T) {
	pol := &fakePolicy{entries: []policy.Entry{unsubscribedFrom("gone@dest.test", "spring-news")}}
	h := startHygiene(t, SubmissionConfig{Policy: pol})
	d := dial(t, h.addr)
	d.expect("EHLO client.test", 250)
	for _, tc := range []struct{ param, field, want string }{
		{"X-DROVER-LIST=spring-news", "X-Drover-List: autumn", `5.6.0 Message's X-Drover-List "autumn" disagrees with MAIL FROM's X-DROVER-LIST=spring-news: name one list, or the same in both`},
		{"X-DROVER-STREAM=transactional", "X-Drover-Stream: Marketing", `5.6.0 Message's X-Drover-Stream "marketing" disagrees with MAIL FROM's X-DROVER-STREAM=transactional: name one stream, or the same in both`},
		{"", "X-Drover-List: spring news", `5.6.0 Bad X-Drover-List field "spring news": it has a space; use only letters, digits, '-', '.' and '_'`},
		{"", "X-Drover-List: a\r\nX-Drover-List: b", `5.6.0 Message has two X-Drover-List fields that disagree ("a" and "b")`},
	} {
		d.expect("MAIL FROM:<news@app.example> "+tc.param, 250)
		d.expect("RCPT TO:<kept@dest.test>", 250)
		if got := d.data("From: news@app.example\r\n"+tc.field+"\r\n\r\nhi\r\n", 550); got != tc.want {
			t.Errorf("%s / %s: reply %q, want %q", tc.param, tc.field, got, tc.want)
		}
	}
	// The same values in both are fine.
	d.expect("MAIL FROM:<news@app.example> X-DROVER-LIST=autumn X-DROVER-STREAM=marketing", 250)
	d.expect("RCPT TO:<kept@dest.test>", 250)
	d.data("From: news@app.example\r\nX-Drover-List: autumn\r\nX-Drover-Stream: marketing\r\n\r\nhi\r\n", 250)

	// Only the header names the list: the recipient passes RCPT (no
	// list) and is refused at DATA; with another recipient, it is taken
	// out and the message queued for the other.
	pol.mu.Lock()
	pol.calls = nil
	pol.mu.Unlock()
	d.expect("MAIL FROM:<news@app.example>", 250)
	d.expect("RCPT TO:<gone@dest.test>", 250)
	if got := d.data("From: news@app.example\r\nX-Drover-List: spring-news\r\n\r\nhi\r\n", 550); got != "5.7.1 Recipient unsubscribed from list spring-news" {
		t.Errorf("DATA to a recipient suppressed by the header's list: %q", got)
	}
	d.expect("MAIL FROM:<news@app.example>", 250)
	d.expect("RCPT TO:<gone@dest.test>", 250)
	d.expect("RCPT TO:<kept@dest.test>", 250)
	d.data("From: news@app.example\r\nX-Drover-List: spring-news\r\n\r\nhi\r\n", 250)
	want := []checkCall{
		{"app", "marketing", "", "gone@dest.test"}, {"app", "marketing", "spring-news", "gone@dest.test"},
		{"app", "marketing", "", "gone@dest.test"}, {"app", "marketing", "", "kept@dest.test"},
		{"app", "marketing", "spring-news", "gone@dest.test"}, {"app", "marketing", "spring-news", "kept@dest.test"},
	}
	if got := pol.checked(); !slices.Equal(got, want) {
		t.Errorf("checks\n%v\nwant\n%v", got, want)
	}
	msgs, rcpts, _ := h.queued()
	last := len(msgs) - 1
	if len(msgs) != 2 || len(rcpts[last]) != 1 || rcpts[last][0].Addr != "kept@dest.test" || msgs[last].List != "spring-news" {
		t.Errorf("queued %d messages, last to %v of list %q; want 2, the last to kept@dest.test of spring-news", len(msgs), rcpts[last], msgs[last].List)
	}
	rejected := h.events.lines(t, queue.EventRejected)
	if n := len(rejected); n != 5 || rejected[4]["command"] != "DATA" || rejected[4]["reason"] != "unsubscribed" || rejected[4]["scope"] != "list" {
		t.Errorf("rejected lines: %v", rejected)
	}
	suppressed := h.events.lines(t, queue.EventSuppressed)
	if len(suppressed) != 2 || suppressed[0]["rcpt"] != "gone@dest.test" || suppressed[1]["list"] != "spring-news" {
		t.Errorf("suppressed lines: %v", suppressed)
	}

	// In drop mode the same message is acknowledged and nothing queued.
	pol.mu.Lock()
	pol.drop = map[string]bool{"app": true}
	pol.mu.Unlock()
	d.expect("MAIL FROM:<news@app.example>", 250)
	d.expect("RCPT TO:<gone@dest.test>", 250)
	if got := d.data("From: news@app.example\r\nX-Drover-List: spring-news\r\n\r\nhi\r\n", 250); !strings.Contains(got, "nothing queued") {
		t.Errorf("drop mode: reply %q", got)
	}
	if msgs, _, _ := h.queued(); len(msgs) != 2 {
		t.Errorf("drop mode: %d messages queued, want none more", len(msgs)-2)
	}
}

// The stream checked is MAIL's, else the sender's default (marketing
// when it has none); the message records the header's, else the same.
func TestStreamChecked(t *testing.T) {
	pol := &fakePolicy{}
	h := startHygiene(t, SubmissionConfig{Policy: pol, Senders: []*Sender{
		{Name: "app", FromDomains: []string{"app.example"}, Stream: "Transactional"}}})
	d := dial(t, h.addr)
	d.expect("EHLO client.test", 250)
	send := func(param, field string) {
		t.Helper()
		d.expect("MAIL FROM:<news@app.example> "+param, 250)
		d.expect("RCPT TO:<a@dest.test>", 250)
		d.data("From: news@app.example\r\n"+field+"\r\n\r\nhi\r\n", 250)
	}
	send("", "")                                        // the sender's default
	send("X-DROVER-STREAM=marketing", "")               // MAIL's
	send("", "X-Drover-Stream: marketing")              // the header's: checked again at DATA
	send("X-DROVER-STREAM=TRANSACTIONAL", "Subject: x") // lower-cased
	want := []checkCall{
		{"app", "transactional", "", "a@dest.test"},
		{"app", "marketing", "", "a@dest.test"},
		{"app", "transactional", "", "a@dest.test"}, {"app", "marketing", "", "a@dest.test"},
		{"app", "transactional", "", "a@dest.test"},
	}
	if got := pol.checked(); !slices.Equal(got, want) {
		t.Errorf("checks\n%v\nwant\n%v", got, want)
	}
	msgs, _, _ := h.queued()
	var streams []string
	for _, m := range msgs {
		streams = append(streams, m.Stream)
	}
	if !slices.Equal(streams, []string{"transactional", "marketing", "marketing", "transactional"}) {
		t.Errorf("streams recorded %v", streams)
	}

	// Without a stream of its own, a sender's default is marketing.
	pol2 := &fakePolicy{}
	h2 := startHygiene(t, SubmissionConfig{Policy: pol2})
	d2 := dial(t, h2.addr)
	d2.expect("EHLO client.test", 250)
	d2.expect("MAIL FROM:<news@app.example>", 250)
	d2.expect("RCPT TO:<a@dest.test>", 250)
	if got := pol2.checked(); !slices.Equal(got, []checkCall{{"app", "marketing", "", "a@dest.test"}}) {
		t.Errorf("checks %v, want stream marketing", got)
	}
}

// A store error at RCPT or at DATA's second check gets 451 4.3.0, and
// nothing is queued.
func TestPolicyStoreError(t *testing.T) {
	pol := &fakePolicy{err: errors.New("disk on fire")}
	h := startHygiene(t, SubmissionConfig{Policy: pol})
	d := dial(t, h.addr)
	d.expect("EHLO client.test", 250)
	d.expect("MAIL FROM:<news@app.example>", 250)
	d.expectText("RCPT TO:<a@dest.test>", 451, "4.3.0 Recipient check failed: local policy store error, try again later")

	pol.mu.Lock()
	pol.err = nil
	pol.mu.Unlock()
	d.expect("RCPT TO:<a@dest.test>", 250)
	pol.mu.Lock()
	pol.err = errors.New("disk on fire")
	pol.mu.Unlock()
	if got := d.data("From: news@app.example\r\nX-Drover-List: weekly\r\n\r\nhi\r\n", 451); got != "4.3.0 Recipient check failed: local policy store error, try again later" {
		t.Errorf("DATA reply %q", got)
	}
	if msgs, _, _ := h.queued(); len(msgs) != 0 {
		t.Errorf("%d messages queued", len(msgs))
	}
}

// Bad X-DROVER-STREAM and X-DROVER-LIST values get 501 5.5.4 saying
// what is wrong.
func TestBadMailControlParams(t *testing.T) {
	h := startHygiene(t, SubmissionConfig{Policy: &fakePolicy{}})
	d := dial(t, h.addr)
	d.expect("EHLO client.test", 250)
	long := strings.Repeat("x", 65)
	for _, tc := range []struct{ param, want string }{
		{"X-DROVER-LIST=spr!ng", `5.5.4 Bad MAIL parameter X-DROVER-LIST=spr!ng: it has '!'; use only letters, digits, '-', '.' and '_'`},
		{"X-DROVER-LIST=" + long, "5.5.4 Bad MAIL parameter X-DROVER-LIST=" + long[:64] + "...: it is 65 bytes long, at most 64 are allowed"},
		{"X-DROVER-STREAM=", "5.5.4 Bad MAIL parameter X-DROVER-STREAM=: it is empty"},
		{"X-DROVER-STREAM", "5.5.4 Bad MAIL parameter X-DROVER-STREAM=: it is empty"},
		{"X-DROVER-LIST=l\u00efst", "5.5.4 Bad MAIL parameter X-DROVER-LIST=l\u00efst: it has byte 0xc3; use only letters, digits, '-', '.' and '_'"},
		{"X-DROVER-LIST=a=b", "5.5.4 Unable to parse MAIL ESMTP parameters"},
	} {
		d.expectText("MAIL FROM:<news@app.example> "+tc.param, 501, tc.want)
	}
	d.expect("MAIL FROM:<news@app.example> X-DROVER-LIST="+long[:64]+" x-drover-stream=Spring_2.news-x", 250)
	if got := len(h.events.lines(t, queue.EventRejected)); got != 5 {
		t.Errorf("%d rejected lines, want 5 (go-smtp's own refusal is not one)", got)
	}
}

// A bad Sender or Links is refused when the server is made.
func TestHygieneConfigErrors(t *testing.T) {
	keys := testTokens()
	for _, tc := range []struct {
		name string
		cfg  SubmissionConfig
		want string
	}{
		{"mode", SubmissionConfig{Senders: []*Sender{{Name: "app", ListUnsubscribe: "sometimes"}}}, `list_unsubscribe "sometimes"`},
		{"stream", SubmissionConfig{Senders: []*Sender{{Name: "app", Stream: "news letters"}}}, `stream "news letters"`},
		{"no key", SubmissionConfig{Links: &policy.Links{Tokens: &policy.Tokens{}, BaseURL: "https://u.test"}}, "no key"},
		{"http", SubmissionConfig{Links: &policy.Links{Tokens: keys, BaseURL: "http://u.test"}}, "not https"},
		{"no host", SubmissionConfig{Links: &policy.Links{Tokens: keys, BaseURL: "https://"}}, "not https"},
		{"CRLF", SubmissionConfig{Links: &policy.Links{Tokens: keys, BaseURL: "https://u.test\r\nBcc: x"}}, "byte 0x0d"},
		{"mailto", SubmissionConfig{Links: &policy.Links{Tokens: keys, BaseURL: "https://u.test", MailtoDomain: map[string]string{"app": "b test"}}}, "not a domain"},
	} {
		if _, err := NewSubmission(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func testTokens() *policy.Tokens {
	return &policy.Tokens{Keys: []policy.Key{{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)}}}
}

// testSigner is a real DKIM signer with an Ed25519 key for app.example
// and the TXT record of its public key.
func testSigner(t *testing.T) (*dkim.Signer, map[string]string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dkim.NewSigner([]*dkim.Key{{Domain: "app.example", Selector: "t1", Signer: priv}})
	if err != nil {
		t.Fatal(err)
	}
	return s, map[string]string{"t1._domainkey.app.example": "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}
}

// headerFields are the values of the fields named name in msg's header,
// unfolded; raw are the fields as they are.
func headerFields(msg, name string) (values, raw []string) {
	fields, _ := splitHeader([]byte(msg))
	for _, f := range fields {
		if f.is(name) {
			values = append(values, f.value())
			raw = append(raw, string(f.raw))
		}
	}
	return values, raw
}

// A marketing message is queued once per recipient, each copy with its
// own Received field and List-Unsubscribe whose token names the
// recipient and the copy, DKIM-signed over both List-Unsubscribe fields;
// the application's own are replaced.
func TestListUnsubscribePerRecipient(t *testing.T) {
	tokens := testTokens()
	signer, records := testSigner(t)
	links := &policy.Links{Tokens: tokens, BaseURL: "https://u.test/", MailtoDomain: map[string]string{"app": "b.test"}}
	h := startHygiene(t, SubmissionConfig{Policy: &fakePolicy{}, Links: links, Signer: signer})
	d := dial(t, h.addr)
	d.expect("EHLO client.test", 250)
	d.expect("MAIL FROM:<news@app.example> X-DROVER-LIST=spring-news", 250)
	d.expect("RCPT TO:<a@dest.test>", 250)
	d.expect("RCPT TO:<b@other.test>", 250)
	reply := d.data("From: News <news@app.example>\r\nTo: undisclosed-recipients:;\r\nSubject: spring\r\n"+
		"List-Unsubscribe: <https://app.example/unsub?u=1>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nhi\r\n", 250)
	if reply != "2.0.0 OK: queued as 2 messages, one per recipient: Q1 Q2" {
		t.Errorf("reply %q", reply)
	}
	msgs, rcpts, bodies := h.queued()
	if len(msgs) != 2 {
		t.Fatalf("%d messages queued, want 2", len(msgs))
	}
	for i, want := range []string{"a@dest.test", "b@other.test"} {
		j := slices.IndexFunc(rcpts, func(r []queue.NewRecipient) bool { return len(r) == 1 && r[0].Addr == want })
		if j < 0 {
			t.Fatalf("no copy for %s alone: %v", want, rcpts)
		}
		msg, body := h.q.msgs[j], bodies[j]
		if msg.ID != fmt.Sprintf("Q%d", i+1) || msg.List != "spring-news" || msg.Stream != "marketing" || msg.Size != len(body) {
			t.Errorf("copy for %s: %+v", want, msg)
		}
		if !strings.Contains(body, " id "+msg.ID+"\r\n\tfor <"+want+">;") {
			t.Errorf("copy for %s: Received field without its id and recipient:\n%s", want, body)
		}
		values, raw := headerFields(body, "List-Unsubscribe")
		if len(values) != 1 || strings.Contains(values[0], "app.example/unsub") {
			t.Fatalf("copy for %s: List-Unsubscribe fields %q, want Drover's only", want, values)
		}
		if post, _ := headerFields(body, "List-Unsubscribe-Post"); !slices.Equal(post, []string{"List-Unsubscribe=One-Click"}) {
			t.Errorf("copy for %s: List-Unsubscribe-Post fields %q", want, post)
		}
		web, mailto, ok := strings.Cut(values[0], ",")
		web, mailto = strings.TrimSpace(web), strings.TrimSpace(mailto)
		if !ok || !strings.HasPrefix(web, "<https://u.test/u/") || !strings.HasPrefix(mailto, "<mailto:unsubscribe@b.test?subject=unsubscribe%20") {
			t.Fatalf("copy for %s: List-Unsubscribe %q", want, values[0])
		}
		tok := strings.TrimSuffix(strings.TrimPrefix(web, "<https://u.test/u/"), ">")
		r, err := tokens.Open(tok, time.Now())
		if err != nil || r != (policy.Recipient{Sender: "app", List: "spring-news", Address: want, MsgID: msg.ID}) {
			t.Errorf("copy for %s: token opens to %+v, %v", want, r, err)
		}
		subject, _ := url.QueryUnescape(strings.TrimPrefix(strings.TrimSuffix(mailto, ">"), "<mailto:unsubscribe@b.test?subject="))
		if subject != "unsubscribe "+tok {
			t.Errorf("copy for %s: mailto subject %q, want the same token", want, subject)
		}
		// Folded after the comma; no line over 998 bytes, no bare CR or LF.
		if !strings.Contains(raw[0], ">,\r\n <mailto:") {
			t.Errorf("copy for %s: field not folded after the comma: %q", want, raw[0])
		}
		for _, line := range strings.Split(body, "\r\n") {
			if len(line) > 998 || strings.ContainsAny(line, "\r\n") {
				t.Errorf("copy for %s: bad line %q", want, line)
			}
		}
		sigs, _ := headerFields(body, "DKIM-Signature")
		if len(sigs) != 1 {
			t.Fatalf("copy for %s: %d DKIM signatures", want, len(sigs))
		}
		signedFields := dkimTag(sigs[0], "h")
		if !slices.Contains(signedFields, "list-unsubscribe") || !slices.Contains(signedFields, "list-unsubscribe-post") {
			t.Errorf("copy for %s: h= %v lacks the List-Unsubscribe fields", want, signedFields)
		}
		vs, err := msgauth.VerifyWithOptions(strings.NewReader(body), &msgauth.VerifyOptions{
			LookupTXT: func(name string) ([]string, error) {
				if txt, ok := records[strings.TrimSuffix(name, ".")]; ok {
					return []string{txt}, nil
				}
				return nil, errors.New("no such record: " + name)
			}})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Errorf("copy for %s: DKIM verification %v %v", want, vs, err)
		}
	}
	lines := h.events.lines(t, queue.EventReceived)
	if len(lines) != 2 || lines[0]["id"] != "Q1" || lines[1]["id"] != "Q2" || lines[0]["rcpts"] != 1.0 {
		t.Errorf("received lines: %v", lines)
	}
	if rcpts, _ := lines[1]["recipients"].([]any); !slices.Equal(rcpts, []any{"b@other.test"}) {
		t.Errorf("second received line's recipients: %v", lines[1]["recipients"])
	}
}

// dkimTag is the value of tag in a DKIM-Signature field, split at its
// colons and lower-cased.
func dkimTag(sig, tag string) []string {
	for _, kv := range strings.Split(sig, ";") {
		k, v, _ := strings.Cut(kv, "=")
		if strings.TrimSpace(k) == tag {
			v = strings.Join(strings.Fields(v), "")
			return strings.Split(strings.ToLower(v), ":")
		}
	}
	return nil
}

// "keep" keeps the application's List-Unsubscribe (and adds Drover's to
// a message without one), "off" adds none, and other streams get none.
func TestListUnsubscribeModes(t *testing.T) {
	own := "List-Unsubscribe: <https://app.example/unsub?u=1>\r\n"
	for _, tc := range []struct {
		name, mode, stream, field string
		copies                    int    // messages queued for two recipients
		want                      string // the List-Unsubscribe of each ("" none; "drover" Drover's)
	}{
		{"keep own", ListUnsubscribeKeep, "", own, 1, "<https://app.example/unsub?u=1>"},
		{"keep without", ListUnsubscribeKeep, "", "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", 2, "drover"},
		{"off", ListUnsubscribeOff, "", own, 1, "<https://app.example/unsub?u=1>"},
		{"off without", ListUnsubscribeOff, "", "", 1, ""},
		{"add", "", "", own, 2, "drover"},
		{"transactional", ListUnsubscribeAdd, "X-DROVER-STREAM=transactional", "", 1, ""},
		{"transactional own", "", "", "X-Drover-Stream: transactional\r\n" + own, 1, "<https://app.example/unsub?u=1>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			links := &policy.Links{Tokens: testTokens(), BaseURL: "https://u.test"}
			h := startHygiene(t, SubmissionConfig{Links: links, Senders: []*Sender{
				{Name: "app", FromDomains: []string{"app.example"}, ListUnsubscribe: tc.mode}}})
			d := dial(t, h.addr)
			d.expect("EHLO client.test", 250)
			d.expect("MAIL FROM:<news@app.example> "+tc.stream, 250)
			d.expect("RCPT TO:<a@dest.test>", 250)
			d.expect("RCPT TO:<b@dest.test>", 250)
			d.data("From: news@app.example\r\n"+tc.field+"Subject: x\r\n\r\nhi\r\n", 250)
			_, rcpts, bodies := h.queued()
			if len(bodies) != tc.copies {
				t.Fatalf("%d messages queued (%v), want %d", len(bodies), rcpts, tc.copies)
			}
			for _, body := range bodies {
				values, _ := headerFields(body, "List-Unsubscribe")
				post, _ := headerFields(body, "List-Unsubscribe-Post")
				switch tc.want {
				case "":
					if len(values) != 0 || len(post) != 0 {
						t.Errorf("List-Unsubscribe %q, -Post %q added", values, post)
					}
				case "drover":
					if len(values) != 1 || !strings.HasPrefix(values[0], "<https://u.test/u/") || strings.Contains(values[0], "mailto") || len(post) != 1 {
						t.Errorf("List-Unsubscribe %q, -Post %q; want Drover's, without mailto (no mailto domain)", values, post)
					}
				default:
					if !slices.Equal(values, []string{tc.want}) || len(post) != 0 {
						t.Errorf("List-Unsubscribe %q, -Post %q; want the application's only", values, post)
					}
				}
			}
		})
	}
}

func TestListUnsubscribeFieldLimits(t *testing.T) {
	if _, err := listUnsubscribe("https://u.test/u/"+strings.Repeat("x", 980), ""); err == nil {
		t.Error("a line over 998 bytes was made")
	}
	if _, err := listUnsubscribe("https://u.test/u/x\r\nBcc: a@b", ""); err == nil {
		t.Error("a URL with CRLF was taken")
	}
	b, err := listUnsubscribe("https://u.test/u/"+strings.Repeat("x", 950), "mailto:unsubscribe@b.test?subject=unsubscribe%20"+strings.Repeat("x", 900))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("List-Unsubscribe: <https://u.test/u/")) || !bytes.Contains(b, []byte(">,\r\n <mailto:")) ||
		!bytes.HasSuffix(b, []byte(">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")) {
		t.Errorf("fields %q", b)
	}
}

// Suppressions are counted by reason, from bounded sets; the policy's
// own events are no delivery outcome.
func TestPolicyMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, func() queue.Stats { return queue.Stats{} }, func() []engine.SiteStatus { return nil })
	for _, ev := range []queue.Event{
		{Kind: queue.EventRejected, Command: "RCPT", Code: 550, Reason: "complaint"},
		{Kind: queue.EventRejected, Command: "DATA", Code: 550, Reason: "no such reason"},
		{Kind: queue.EventRejected, Command: "RCPT", Code: 553},
		{Kind: queue.EventSuppressed, Reason: "inactive"},
		{Kind: queue.EventUnsubscribed, Reason: "unsubscribed"},
		{Kind: queue.EventConfirmedBounce},
		{Kind: queue.EventKind("suppression-added")}, // a kind Observe does not know
	} {
		m.Observe(ev)
	}
	for _, c := range []struct {
		name, reason string
		want         float64
	}{
		{"drover_policy_refusals_total", "complaint", 1}, {"drover_policy_refusals_total", "other", 1},
		{"drover_policy_refusals_total", "manual", 0}, {"drover_suppressed_total", "inactive", 1},
		{"drover_suppressed_total", "unsubscribed", 0},
	} {
		if got := counterWith(t, reg, c.name, map[string]string{"reason": c.reason}); got != c.want {
			t.Errorf("%s{reason=%q} = %v, want %v", c.name, c.reason, got, c.want)
		}
	}
	for _, r := range []string{"unsubscribed", "confirmed-bounce", "suppressed", "suppression-added"} {
		if got := counterWith(t, reg, "drover_deliveries_total", map[string]string{"result": r}); got != -1 {
			t.Errorf("drover_deliveries_total{result=%q} = %v, want none", r, got)
		}
	}
}

// The [unsubscribe: ...], [opt-in: ...] and [manage: ...] tags of a
// message, of any stream, become each recipient's links before its copy
// is signed: every copy verifies. Tags without links are refused with
// 554 5.6.0.
func TestTagsPerRecipient(t *testing.T) {
	tokens := testTokens()
	signer, records := testSigner(t)
	links := &policy.Links{Tokens: tokens, BaseURL: "https://u.test"}
	h := startHygiene(t, SubmissionConfig{Policy: &fakePolicy{}, Links: links, Signer: signer})
	d := dial(t, h.addr)
	d.expect("EHLO client.test", 250)
	send := func(stream, body string, code int) string {
		d.expect("MAIL FROM:<news@app.example> X-DROVER-LIST=spring X-DROVER-STREAM="+stream, 250)
		d.expect("RCPT TO:<a@dest.test>", 250)
		d.expect("RCPT TO:<b@dest.test>", 250)
		return d.data("From: news@app.example\r\nSubject: re-permission\r\n\r\n"+body, code)
	}
	send("transactional", "Still want it? [opt-in: Yes, keep me] or [unsubscribe: no thanks]\r\n", 250)
	msgs, _, bodies := h.queued()
	if len(msgs) != 2 {
		t.Fatalf("%d messages queued, want a copy per recipient", len(msgs))
	}
	for i, want := range []string{"a@dest.test", "b@dest.test"} {
		body := bodies[i]
		m := regexp.MustCompile(`Yes, keep me <https://u\.test/c/([^>]+)> or no thanks <https://u\.test/u/([^>]+)>`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("copy %d: links not filled:\n%s", i, body)
		}
		if r, err := tokens.Open(m[1], time.Now()); err != nil || r.Address != want || r.MsgID != policy.ConfirmMarker || r.List != "spring" {
			t.Errorf("copy %d: opt-in token %+v %v", i, r, err)
		}
		if r, err := tokens.Open(m[2], time.Now()); err != nil || r.Address != want || r.MsgID != msgs[i].ID {
			t.Errorf("copy %d: unsubscribe token %+v %v", i, r, err)
		}
		vs, err := msgauth.VerifyWithOptions(strings.NewReader(body), &msgauth.VerifyOptions{
			LookupTXT: func(name string) ([]string, error) { return []string{records[strings.TrimSuffix(name, ".")]}, nil }})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Errorf("copy %d: DKIM %v %v", i, vs, err)
		}
	}
	send("transactional", "[manage: your settings]\r\n", 250)
	msgs, _, bodies = h.queued()
	if len(msgs) != 4 {
		t.Fatalf("%d messages queued, want 4", len(msgs))
	}
	for i, want := range []string{"a@dest.test", "b@dest.test"} {
		m := regexp.MustCompile(`your settings <https://u\.test/m/([^>]+)>`).FindStringSubmatch(bodies[2+i])
		if m == nil {
			t.Fatalf("copy %d: manage link not filled:\n%s", i, bodies[2+i])
		}
		if r, err := tokens.Open(m[1], time.Now()); err != nil || r.Address != want || r.MsgID != policy.ManageMarker || r.List != "spring" {
			t.Errorf("copy %d: manage token %+v %v", i, r, err)
		}
	}
	h2 := startHygiene(t, SubmissionConfig{Policy: &fakePolicy{}})
	d = dial(t, h2.addr)
	d.expect("EHLO client.test", 250)
	d.expect("MAIL FROM:<news@app.example>", 250)
	d.expect("RCPT TO:<a@dest.test>", 250)
	if got := d.data("From: news@app.example\r\n\r\n[unsubscribe: bye]\r\n", 554); !strings.Contains(got, "no [unsubscribe: ...] links") {
		t.Errorf("tags without links: %q", got)
	}
}

func TestListUnsubscribeMailtoOnly(t *testing.T) {
	b, err := listUnsubscribe("", "mailto:unsubscribe@b.test?subject=x")
	if err != nil || string(b) != "List-Unsubscribe: <mailto:unsubscribe@b.test?subject=x>\r\n" {
		t.Errorf("%q %v", b, err)
	}
}
