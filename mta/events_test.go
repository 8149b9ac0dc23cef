package mta

import (
	"encoding/base64"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/queue"
	"drover/queue/engine"
)

// eventRecorder keeps the events a listener emits.
type eventRecorder struct {
	mu  sync.Mutex
	evs []queue.Event
}

func (r *eventRecorder) add(ev queue.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

// lines are the events of kind as mail-log lines: JSON objects, whose
// keys must all be snake_case.
func (r *eventRecorder) lines(t *testing.T, kind queue.EventKind) []map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, ev := range r.evs {
		if ev.Kind != kind {
			continue
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var line map[string]any
		json.Unmarshal(b, &line)
		for k := range line {
			if !snakeCase.MatchString(k) {
				t.Errorf("mail log key %q is not snake_case", k)
			}
		}
		line["json"] = string(b)
		out = append(out, line)
	}
	return out
}

var snakeCase = regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)

// counterWith reads the counter of name whose labels are labels; -1 if
// there is none.
func counterWith(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// A refused MAIL, RCPT or DATA is a rejected line in the mail log (what
// Postfix logs as NOQUEUE: reject): the client, its HELO name, the
// sender, the recipient of a RCPT, the command and the reply; never the
// password nor the message. Each is counted by command and code.
func TestRejectionsLogged(t *testing.T) {
	s := startServer(t, false)
	auth := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00shop\x00s3cret"))
	cases := []struct {
		name  string
		addr  string
		steps [][2]any // command, code
		data  string   // DATA refused with code
		code  int
		want  map[string]any // the rejected line has these
	}{
		{"relay refused", s.strict, [][2]any{{"MAIL FROM:<a@app.example>", 530}}, "", 0,
			map[string]any{"command": "MAIL", "from": "a@app.example", "code": 530.0, "status": "5.7.0"}},
		{"sender does not own the domain", s.plain, [][2]any{{auth, 235}, {"MAIL FROM:<ceo@bank.example>", 550}}, "", 0,
			map[string]any{"command": "MAIL", "from": "ceo@bank.example", "code": 550.0, "status": "5.7.1", "sender": "shop", "login": "shop"}},
		{"bad recipient", s.plain, [][2]any{{"MAIL FROM:<a@app.example>", 250}, {"RCPT TO:<john..doe@dest.test>", 553}}, "", 0,
			map[string]any{"command": "RCPT", "from": "a@app.example", "rcpt": "john..doe@dest.test", "code": 553.0, "status": "5.1.3", "sender": "app"}},
		{"too many recipients", s.plain, [][2]any{{"MAIL FROM:<a@app.example>", 250},
			{"RCPT TO:<1@d.test>", 250}, {"RCPT TO:<2@d.test>", 250}, {"RCPT TO:<3@d.test>", 250}, {"RCPT TO:<4@d.test>", 452}}, "", 0,
			map[string]any{"command": "RCPT", "from": "a@app.example", "rcpt": "4@d.test", "code": 452.0, "status": "4.5.3"}},
		{"foreign From header", s.plain, [][2]any{{"MAIL FROM:<a@app.example>", 250}, {"RCPT TO:<b@dest.test>", 250}},
			"From: ceo@bank.example\r\n\r\nsecret-body-text\r\n", 550,
			map[string]any{"command": "DATA", "from": "a@app.example", "code": 550.0, "status": "5.7.1", "rcpts": 1.0}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := dial(t, tc.addr)
			d.expect("EHLO client.test", 250)
			var last string
			for _, st := range tc.steps {
				last = d.expect(st[0].(string), st[1].(int))
			}
			if tc.data != "" {
				last = d.data(tc.data, tc.code)
			}
			lines := s.events.lines(t, queue.EventRejected)
			if len(lines) != i+1 {
				t.Fatalf("%d rejected lines, want %d: %v", len(lines), i+1, lines)
			}
			line := lines[i]
			for k, v := range tc.want {
				if line[k] != v {
					t.Errorf("%s = %v, want %v in %s", k, line[k], v, line["json"])
				}
			}
			if line["client_ip"] != "127.0.0.1" || line["helo"] != "client.test" || line["reply"] == "" || !strings.Contains(last, line["reply"].(string)) {
				t.Errorf("rejected line without the client, HELO name or reply %q: %s", last, line["json"])
			}
			if j := line["json"].(string); strings.Contains(j, "s3cret") || strings.Contains(j, auth[len("AUTH PLAIN "):]) || strings.Contains(j, "secret-body-text") {
				t.Errorf("rejected line has the password or the message: %s", j)
			}
		})
	}
	for _, c := range []struct {
		command, code string
		want          float64
	}{{"MAIL", "530", 1}, {"MAIL", "550", 1}, {"RCPT", "553", 1}, {"RCPT", "452", 1}, {"DATA", "550", 1}} {
		if got := counterWith(t, s.reg, "drover_smtp_rejections_total", map[string]string{"command": c.command, "code": c.code}); got != c.want {
			t.Errorf("drover_smtp_rejections_total{command=%q,code=%q} = %v, want %v", c.command, c.code, got, c.want)
		}
	}
}

// The received line names the client, the login, the TLS version, the
// Message-ID and every recipient; the Received field names the queue id,
// and no recipient when there are two.
func TestReceivedLogged(t *testing.T) {
	s := startServer(t, false)
	d := dialTLS(t, s.tls)
	d.expect("EHLO client.test", 250)
	d.expect("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00shop\x00s3cret")), 235)
	d.expect("MAIL FROM:<orders@shop.example>", 250)
	d.expect("RCPT TO:<a@dest.test>", 250)
	d.expect("RCPT TO:<b@dest.test>", 250)
	d.data("From: orders@shop.example\r\nMessage-ID: <order-7@shop.example>\r\nSubject: order\r\n\r\nthanks\r\n", 250)

	lines := s.events.lines(t, queue.EventReceived)
	if len(lines) != 1 {
		t.Fatalf("received lines: %v", lines)
	}
	line := lines[0]
	want := map[string]any{"id": "Q1", "client_ip": "127.0.0.1", "helo": "client.test", "login": "shop", "sender": "shop",
		"tls": "TLS1.3", "message_id": "<order-7@shop.example>", "from": "orders@shop.example", "rcpts": 2.0}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v, want %v in %s", k, line[k], v, line["json"])
		}
	}
	if rcpts, _ := line["recipients"].([]any); !slices.Equal(rcpts, []any{"a@dest.test", "b@dest.test"}) {
		t.Errorf("recipients = %v, want both addresses", line["recipients"])
	}
	_, _, body := s.q.last(t)
	received, _, _ := strings.Cut(body, "\r\nFrom:")
	if !strings.Contains(received, "with ESMTPSA id Q1;\r\n\t") || strings.Contains(received, "for <") {
		t.Errorf("Received field for two recipients, want the queue id and no recipient:\n%s", received)
	}
}

// The Received field of a message to one recipient names the queue id,
// the HELO name and the recipient; a Message-ID Drover adds is the one
// logged.
func TestReceivedFieldNamesQueueIDAndRecipient(t *testing.T) {
	s := startServer(t, false)
	d := dial(t, s.plain)
	d.expect("EHLO client.test", 250)
	d.expect("MAIL FROM:<news@app.example>", 250)
	d.expect("RCPT TO:<a@dest.test>", 250)
	d.data("From: news@app.example\r\nSubject: hi\r\n\r\nbody\r\n", 250)
	msg, _, body := s.q.last(t)
	want := "Received: from client.test ([127.0.0.1])\r\n\tby drover.test (Drover) with ESMTP id " + msg.ID + "\r\n\tfor <a@dest.test>;\r\n\t"
	if msg.ID != "Q1" || !strings.HasPrefix(body, want) {
		t.Errorf("message %q, body starts\n%q\nwant\n%q", msg.ID, body[:min(len(body), len(want)+20)], want)
	}
	lines := s.events.lines(t, queue.EventReceived)
	if len(lines) != 1 {
		t.Fatalf("received lines: %v", lines)
	}
	mid, _ := lines[0]["message_id"].(string)
	if !strings.HasPrefix(mid, "<") || !strings.Contains(body, "\r\nMessage-ID: "+mid+"\r\n") {
		t.Errorf("logged Message-ID %q is not the message's:\n%s", mid, body)
	}
	if lines[0]["tls"] != nil || lines[0]["login"] != nil {
		t.Errorf("TLS or login logged for a plain loopback session: %s", lines[0]["json"])
	}
}

// A DSN's received line names the message it reports on and its kind,
// and the notices are counted by kind.
func TestDSNReceivedEvent(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, func() queue.Stats { return queue.Stats{} }, func() []engine.SiteStatus { return nil })
	rec := &eventRecorder{}
	q := &fakeQueue{}
	n := &DSNNotifier{Hostname: "drover.test", Queue: q, OnEvent: Fanout(rec.add, metrics.Observe)}
	msg := &queue.Message{ID: "0orig0000000001x", Sender: "app", ReturnPath: "a@shop.example", WantDSN: true, Received: time.Now()}
	body := []byte("From: a@shop.example\r\nSubject: order\r\n\r\nbody\r\n")
	failed := []queue.Failed{{Recipient: queue.Recipient{Addr: "gone@dest.example"}, Result: queue.Result{Status: queue.Permanent, Code: 550, Enhanced: "5.1.1"}}}
	if err := n.OnFailure(msg, body, failed); err != nil {
		t.Fatal(err)
	}
	if err := n.OnDelay(msg, body, []queue.Recipient{{Addr: "slow@dest.example", Notify: "DELAY"}}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	lines := rec.lines(t, queue.EventReceived)
	if len(lines) != 2 {
		t.Fatalf("received lines: %v", lines)
	}
	for i, kind := range []string{"failure", "delay"} {
		line := lines[i]
		if line["original_id"] != msg.ID || line["dsn"] != kind || line["id"] != q.msgs[i].ID || line["stream"] != "dsn" {
			t.Errorf("DSN line %d: %s, want original_id %s, dsn %s, id %s", i, line["json"], msg.ID, kind, q.msgs[i].ID)
		}
		if rcpts, _ := line["recipients"].([]any); !slices.Equal(rcpts, []any{"a@shop.example"}) {
			t.Errorf("DSN line %d: recipients %v", i, line["recipients"])
		}
		if mid, _ := line["message_id"].(string); mid == "" || !strings.Contains(string(q.bodies[i]), "Message-ID: "+mid) {
			t.Errorf("DSN line %d: message_id %q is not the notice's", i, mid)
		}
		if got := counterWith(t, reg, "drover_dsn_generated_total", map[string]string{"kind": kind}); got != 1 {
			t.Errorf("drover_dsn_generated_total{kind=%q} = %v, want 1", kind, got)
		}
	}
	if got := counterWith(t, reg, "drover_messages_received_total", nil); got != 0 {
		t.Errorf("DSNs counted as messages received: %v", got)
	}
}

// Bounces are counted by class and reason, from bounded sets of values.
func TestBounceMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, func() queue.Stats { return queue.Stats{} }, func() []engine.SiteStatus { return nil })
	for _, ev := range []queue.Event{
		{Kind: queue.EventBounced, Class: "hard", Reason: "userunknown"},
		{Kind: queue.EventBounced, Class: "hard", Reason: "userunknown"},
		{Kind: queue.EventBounced, Class: "soft", Reason: "mailboxfull"},
		{Kind: queue.EventBounced, Reason: queue.ReasonOperator},
		{Kind: queue.EventBounced, Class: "hard", Reason: "no such reason from anywhere"},
		{Kind: queue.EventRejected, Command: "RCPT", Code: 452},
	} {
		m.Observe(ev)
	}
	for _, c := range []struct {
		class, reason string
		want          float64
	}{{"hard", "userunknown", 2}, {"soft", "mailboxfull", 1}, {"none", "operator", 1}, {"hard", "other", 1}} {
		if got := counterWith(t, reg, "drover_bounces_total", map[string]string{"class": c.class, "reason": c.reason}); got != c.want {
			t.Errorf("drover_bounces_total{class=%q,reason=%q} = %v, want %v", c.class, c.reason, got, c.want)
		}
	}
	if got := counterWith(t, reg, "drover_deliveries_total", map[string]string{"result": "bounced"}); got != 5 {
		t.Errorf("drover_deliveries_total{result=bounced} = %v, want 5", got)
	}
	if got := counterWith(t, reg, "drover_deliveries_total", map[string]string{"result": "rejected"}); got != -1 {
		t.Errorf("a rejection counted as a delivery: %v", got)
	}
	if got := counterWith(t, reg, "drover_smtp_rejections_total", map[string]string{"command": "RCPT", "code": "452"}); got != 1 {
		t.Errorf("drover_smtp_rejections_total{command=RCPT,code=452} = %v, want 1", got)
	}
}
