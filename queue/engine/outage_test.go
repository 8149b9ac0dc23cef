package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/emersion/go-smtp"

	"drover/mta"
	"drover/mta/courier"
	"drover/mta/resolve"
	"drover/queue"
	"drover/queue/engine"
	"drover/queue/shaping"
	"drover/testkit"
)

// The retry policy of the outage: far shorter than the outage itself.
const (
	outageInterval    = time.Minute
	outageMaxInterval = 10 * time.Minute
	outageMaxAge      = 2 * time.Hour
)

// The outage's destinations, each down in its own way for longer than
// MaxAge, and the routes to their MX addresses.
const (
	refusedDest = "refused.test" // connections refused
	closingDest = "closing.test" // 421 to MAIL: the server is closing
	busyDest    = "busy.test"    // 451 to every RCPT
	refusedAddr = "192.0.2.1:25"
	closingAddr = "192.0.2.2:25"
	busyAddr    = "192.0.2.3:25"
	sinkAddr    = "192.0.2.9:25" // everything else: the return path's MX
	returnPath  = "app@shop.test"
)

var outageDests = []string{refusedDest, closingDest, busyDest}

// outageLog is what the test sees of the outage: the spool's events and
// what reached each MX, on the bubble's clock.
type outageLog struct {
	changes testkit.Signal

	mu     sync.Mutex
	events []queue.Event
	dials  []time.Time            // connections refused at refused.test
	mails  []time.Time            // MAIL commands at closing.test
	rcpts  map[string][]time.Time // RCPT commands at busy.test, per address
	hooks  int                    // OnFailure calls
}

func (o *outageLog) event(ev queue.Event) {
	o.mu.Lock()
	o.events = append(o.events, ev)
	o.mu.Unlock()
	o.changes.Broadcast()
}

func (o *outageLog) record(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f()
}

func (o *outageLog) of(kind queue.EventKind) []queue.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []queue.Event
	for _, ev := range o.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// A destination that stays down for longer than MaxAge, through the real
// courier and SMTP client to fake MX hosts over in-memory pipes, on the
// fake clock of a synctest bubble: 50 recipients of 5 messages (arriving
// 2 minutes apart) over three destinations, one refusing connections, one
// answering 421 to MAIL, one 451 to every RCPT, with RetryInterval 1m,
// MaxRetryInterval 10m, MaxAge 2h. Drover is stopped 37 minutes in and
// started again on the same spool 7 minutes later.
//
// Every recipient is attempted on arrival and then exactly when its retry
// is due (Interval doubled per attempt up to MaxInterval, within the
// spool's jitter of -20%..+20%, at most MaxInterval), except that a retry
// due while Drover was stopped comes at the restart, not before its time
// and not forgotten; the restart keeps every recipient's attempts, next
// attempt, last error and arrival. Each attempt reached the network (a
// refused connection, a MAIL or the recipient's RCPT at that instant).
// Each recipient expires at its first retry due past MaxAge from its
// message's arrival (not from the restart), without another attempt, and
// gets exactly one failure DSN (Action: failed, Status: 4.4.7, the
// original Arrival-Date) sent to the return path at that moment from the
// null sender. None is lost, and the spool is empty at the end.
func TestOutageLongerThanMaxAge(t *testing.T) { synctest.Test(t, outageLongerThanMaxAge) }

func outageLongerThanMaxAge(t *testing.T) {
	const (
		messages  = 5
		perMsg    = 10
		arrivals  = 2 * time.Minute // between messages
		stopAfter = 37*time.Minute + 13*time.Second
		downtime  = 7 * time.Minute
	)
	log := &outageLog{rcpts: map[string][]time.Time{}}
	closing := testkit.StartMX(t, testkit.MXOptions{NoTCP: true, Name: "mx." + closingDest, Answer: func(c testkit.Command) error {
		if c.Verb == "MAIL" {
			log.record(func() { log.mails = append(log.mails, time.Now()) })
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down for maintenance"}
		}
		return nil
	}})
	busy := testkit.StartMX(t, testkit.MXOptions{NoTCP: true, Name: "mx." + busyDest, Answer: func(c testkit.Command) error {
		if c.Verb == "RCPT" {
			log.record(func() { log.rcpts[c.Arg] = append(log.rcpts[c.Arg], time.Now()) })
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "system not accepting mail"}
		}
		return nil
	}})
	sink := testkit.StartMX(t, testkit.MXOptions{NoTCP: true, Name: "mx.shop.test"})
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		switch addr {
		case refusedAddr:
			log.record(func() { log.dials = append(log.dials, time.Now()) })
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr)), Err: syscall.ECONNREFUSED}
		case closingAddr:
			return closing.Dial(ctx, network, addr)
		case busyAddr:
			return busy.Dial(ctx, network, addr)
		}
		return sink.Dial(ctx, network, addr)
	}
	routes, err := resolve.NewRoutes(map[string]string{refusedDest: refusedAddr, closingDest: closingAddr, busyDest: busyAddr, "*": sinkAddr})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := shaping.New(shaping.Config{Default: shaping.Settings{
		TLS:              new(shaping.TLSDisabled),
		RetryInterval:    new(outageInterval),
		MaxRetryInterval: new(outageMaxInterval),
		MaxAge:           new(outageMaxAge),
	}})
	if err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.DiscardHandler)
	dir := t.TempDir()

	// open opens the spool on dir, with DSNs sent by the DSN notifier
	// into the spool itself; start starts a new engine and courier on it
	// (as Drover does at start), and stop closes the engine, then the
	// spool.
	var spool *queue.Spool
	var eng *engine.Engine
	open := func() {
		t.Helper()
		dsn := &mta.DSNNotifier{Hostname: "out.test"}
		s, err := queue.Open(queue.Options{Dir: dir, Logger: discard, OnEvent: log.event,
			OnFailure: func(msg *queue.Message, body []byte, failed []queue.Failed) error {
				defer log.changes.Broadcast()
				log.record(func() { log.hooks++ })
				return dsn.OnFailure(msg, body, failed)
			}})
		if err != nil {
			t.Fatal(err)
		}
		dsn.Queue = s
		spool = s
	}
	start := func() {
		t.Helper()
		cour := courier.New(courier.Config{Hostname: "out.test", Routes: routes, Dial: dial, Logger: discard,
			Shaping: shaping.NewCurrent(sh)})
		e, err := engine.New(engine.Config{Spool: spool, Planner: cour, Courier: cour, Logger: discard})
		if err != nil {
			t.Fatal(err)
		}
		e.Start()
		eng = e
	}
	stop := func() {
		t.Helper()
		if err := errors.Join(eng.Close(context.Background()), spool.Close(context.Background())); err != nil {
			t.Fatal(err)
		}
	}
	open()
	start()

	t0 := time.Now()
	var ids []string
	for k := range messages {
		if k > 0 {
			time.Sleep(arrivals)
		}
		var rcpts []queue.NewRecipient
		for j := range perMsg {
			i := k*perMsg + j
			rcpts = append(rcpts, queue.NewRecipient{Addr: fmt.Sprintf("r%02d@%s", i, outageDests[i%len(outageDests)])})
		}
		id, err := spool.Enqueue(&queue.Message{Sender: "shop", ReturnPath: returnPath, WantDSN: true},
			rcpts, []byte("Subject: outage\r\n\r\nbody\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	const total = messages * perMsg

	// Stopped in the middle of the outage, when every recipient is
	// retried at the cap; what the records say before and after.
	time.Sleep(time.Until(t0.Add(stopAfter)))
	synctest.Wait()
	stopped := time.Now()
	if st := spool.Stats(); st.Recipients != total || st.Messages != messages || st.InFlight != 0 || st.Deferred != total {
		t.Fatalf("stats before the restart: %+v", st)
	}
	if n := len(log.of(queue.EventExpired)); n != 0 {
		t.Fatalf("%d recipients expired %v into an outage, MaxAge %v", n, stopAfter, outageMaxAge)
	}
	type shown struct {
		msg   *queue.Message
		rcpts []queue.Recipient
	}
	show := func() map[string]shown {
		t.Helper()
		out := map[string]shown{}
		for _, id := range ids {
			msg, rcpts, err := spool.Show(id)
			if err != nil {
				t.Fatalf("Show %s: %v", id, err)
			}
			out[id] = shown{msg, rcpts}
		}
		return out
	}
	before := show()
	stop()

	time.Sleep(downtime)
	restarted := time.Now()
	open()
	after := show()
	if st := spool.Stats(); st.Recipients != total || st.Messages != messages {
		t.Errorf("stats after the restart: %+v", st)
	}
	received := map[string]time.Time{} // arrival per message ID
	for _, id := range ids {
		b, a := before[id], after[id]
		received[id] = b.msg.Received
		if !a.msg.Received.Equal(b.msg.Received) {
			t.Errorf("%s arrived at %v, after the restart at %v", id, b.msg.Received, a.msg.Received)
		}
		if len(a.rcpts) != len(b.rcpts) {
			t.Errorf("%s: %d recipients before the restart, %d after", id, len(b.rcpts), len(a.rcpts))
			continue
		}
		for i, r := range b.rcpts {
			ar := a.rcpts[i]
			if ar.Addr != r.Addr || ar.Attempts != r.Attempts || !ar.NextAttempt.Equal(r.NextAttempt) ||
				!ar.LastAttempt.Equal(r.LastAttempt) || ar.LastError != r.LastError || r.Attempts == 0 {
				t.Errorf("%s %s: before the restart %+v, after %+v", id, r.Addr, r, ar)
			}
		}
	}
	start()

	if !log.changes.Await(3*time.Hour, func() bool {
		return len(log.of(queue.EventExpired)) == total && spool.Stats() == (queue.Stats{})
	}) {
		t.Fatalf("after the outage: %d recipients expired, stats %+v", len(log.of(queue.EventExpired)), spool.Stats())
	}
	synctest.Wait()
	stop()

	// Every attempt of every recipient, from the events.
	deferred := map[string][]queue.Event{} // "id addr" -> deferrals, in order
	expired := map[string]queue.Event{}
	for _, ev := range log.of(queue.EventDeferred) {
		k := ev.MsgID + " " + ev.Recipient
		deferred[k] = append(deferred[k], ev)
	}
	for _, ev := range log.of(queue.EventExpired) {
		k := ev.MsgID + " " + ev.Recipient
		if _, dup := expired[k]; dup {
			t.Errorf("%s expired twice", k)
		}
		expired[k] = ev
	}
	if n := len(log.of(queue.EventBounced)); n != 0 {
		t.Errorf("%d bounced events", n)
	}
	atRestart, onTime := 0, 0
	minAttempts, maxAttempts, attempts := 1<<30, 0, 0
	lost := 0
	expiredAt := map[string]time.Time{}    // addr -> expiry
	arrivalOf := map[string]time.Time{}    // addr -> its message's arrival
	attemptsAt := map[string][]time.Time{} // dest -> instants of its attempts
	for _, id := range ids {
		for _, r := range before[id].rcpts {
			k := id + " " + r.Addr
			recv := received[id]
			arrivalOf[r.Addr] = recv
			ds, x := deferred[k], expired[k]
			if x.Kind == "" || len(ds) == 0 {
				t.Errorf("%s: %d attempts, expired %+v", k, len(ds), x)
				lost++
				continue
			}
			expiredAt[r.Addr] = x.Time
			n := len(ds)
			attempts += n
			minAttempts, maxAttempts = min(minAttempts, n), max(maxAttempts, n)
			if !ds[0].Time.Equal(recv) {
				t.Errorf("%s: first attempt %v after arrival", k, ds[0].Time.Sub(recv))
			}
			for i, d := range ds {
				attempt := i + 1
				attemptsAt[r.Domain] = append(attemptsAt[r.Domain], d.Time)
				if d.Attempt != attempt {
					t.Errorf("%s: deferral %d says attempt %d", k, attempt, d.Attempt)
				}
				if d.Time.After(stopped) && d.Time.Before(restarted) {
					t.Errorf("%s: attempt %d at +%v, while Drover was stopped", k, attempt, d.Time.Sub(t0))
				}
				if age := d.Time.Sub(recv); age > outageMaxAge || d.Delay != age {
					t.Errorf("%s: attempt %d deferred at age %v (delay %v), MaxAge %v", k, attempt, age, d.Delay, outageMaxAge)
				}
				lo, hi := backoffBounds(attempt)
				if attempt == len(ds) {
					lo = 0 // the last retry is moved up to the expiry
				}
				if gap := d.NextRetry.Sub(d.Time); gap < lo || gap > hi {
					t.Errorf("%s: attempt %d retried after %v, want %v..%v", k, attempt, gap, lo, hi)
				}
				// The next attempt (or the expiry) comes when due, or at
				// the restart when it fell due while Drover was stopped.
				want := d.NextRetry
				if want.After(stopped) && want.Before(restarted) {
					want = restarted
				}
				next := x.Time
				if i+1 < n {
					next = ds[i+1].Time
				}
				if !next.Equal(want) {
					t.Errorf("%s: attempt %d at +%v, then the next at +%v; due at +%v (stopped +%v..+%v)",
						k, attempt, d.Time.Sub(t0), next.Sub(t0), d.NextRetry.Sub(t0), stopped.Sub(t0), restarted.Sub(t0))
				}
				if want.Equal(restarted) {
					atRestart++
				} else {
					onTime++
				}
			}
			// Expired just past MaxAge from arrival (the retry that would
			// have come later is moved up to it):
			// no attempt then, and the last error in the text.
			last := ds[n-1]
			if age := x.Time.Sub(recv); age != outageMaxAge+time.Nanosecond || x.Delay != age {
				t.Errorf("%s: expired at age %v (delay %v), want just past %v", k, age, x.Delay, outageMaxAge)
			}
			if x.Attempt != n || x.Enhanced != "4.4.7" || x.Code != 0 ||
				x.Text != fmt.Sprintf("4.4.7 message expired after %d attempts: %s", n, lastError(t, last)) {
				t.Errorf("%s: expired after %d attempts: %+v", k, n, x)
			}
			if !strings.Contains(x.Text, map[string]string{refusedDest: "connection refused", closingDest: "421 4.3.2", busyDest: "451 4.3.2"}[r.Domain]) {
				t.Errorf("%s: expired with %q", k, x.Text)
			}
		}
	}

	// Each attempt reached the destination's MX (or its address) at
	// that instant, and nothing else did.
	log.mu.Lock()
	dials, mails, rcpts := slices.Clone(log.dials), slices.Clone(log.mails), log.rcpts
	hooks := log.hooks
	log.mu.Unlock()
	if got, want := instants(dials), instants(attemptsAt[refusedDest]); !slices.Equal(got, want) {
		t.Errorf("connections refused at %d instants, recipients of %s attempted at %d", len(got), refusedDest, len(want))
	}
	if got, want := instants(mails), instants(attemptsAt[closingDest]); !slices.Equal(got, want) {
		t.Errorf("MAIL answered 421 at %d instants, recipients of %s attempted at %d", len(got), closingDest, len(want))
	}
	busyRcpts := 0
	for k, ds := range deferred {
		addr := k[strings.IndexByte(k, ' ')+1:]
		if !strings.HasSuffix(addr, "@"+busyDest) {
			continue
		}
		var want []time.Time
		for _, d := range ds {
			want = append(want, d.Time)
		}
		if got := rcpts[addr]; !slices.EqualFunc(got, want, time.Time.Equal) {
			t.Errorf("%s: RCPT at %v, attempts at %v", addr, got, want)
		}
		busyRcpts += len(rcpts[addr])
	}

	// One failure DSN for each recipient, sent to the return path when
	// the recipient expired.
	dsnOf := map[string]int{}
	txs := sink.Transactions()
	for _, tx := range txs {
		if tx.From != "" || !slices.Equal(tx.Rcpts, []string{returnPath}) {
			t.Errorf("DSN from <%s> to %v", tx.From, tx.Rcpts)
		}
		arrival, rs := parseDSN(string(tx.Data))
		for _, r := range rs {
			dsnOf[r.addr]++
			if r.action != "failed" || r.status != "4.4.7" {
				t.Errorf("DSN for %s: Action %q, Status %q", r.addr, r.action, r.status)
			}
			if at, ok := expiredAt[r.addr]; !ok || !tx.At.Equal(at) {
				t.Errorf("DSN for %s sent at +%v, expired at +%v", r.addr, tx.At.Sub(t0), at.Sub(t0))
			}
			if want := arrivalOf[r.addr].Format(time.RFC1123Z); arrival != want {
				t.Errorf("DSN for %s: Arrival-Date %q, want %q", r.addr, arrival, want)
			}
		}
		if !strings.Contains(string(tx.Data), "To: <"+returnPath+">") {
			t.Errorf("DSN not addressed to the return path:\n%s", tx.Data)
		}
	}
	dsnRcpts := 0
	for addr := range arrivalOf {
		if dsnOf[addr] != 1 {
			t.Errorf("%s got %d DSNs", addr, dsnOf[addr])
		}
		dsnRcpts += dsnOf[addr]
	}
	if len(dsnOf) != total {
		t.Errorf("DSNs name %d recipients, want %d", len(dsnOf), total)
	}
	if d := log.of(queue.EventDelivered); len(d) != len(txs) || len(txs) != hooks {
		t.Errorf("%d deliveries, %d DSNs at the return path's MX, %d OnFailure calls", len(d), len(txs), hooks)
	}
	if keys := queueKeys(t, dir); len(keys) != 0 {
		t.Errorf("keys left in the spool: %v", keys)
	}
	t.Logf("%d recipients over %d destinations: %d..%d attempts each (%d in all; %d retries when due, %d at the restart); "+
		"%d connections refused, %d MAIL answered 421, %d RCPT answered 451; %d DSN messages for %d recipients; lost %d",
		total, len(outageDests), minAttempts, maxAttempts, attempts, onTime-total, atRestart,
		len(dials), len(mails), busyRcpts, len(txs), dsnRcpts, lost)
}

// backoffBounds is the delay the spool may give the retry after attempt
// attempts (see queue's backoff): Interval doubled per attempt, -20% to
// +20% but at most MaxInterval; at the cap, -20% to the cap.
func backoffBounds(attempts int) (lo, hi time.Duration) {
	if attempts > 20 {
		return outageMaxInterval * 8 / 10, outageMaxInterval
	}
	base := outageInterval << (attempts - 1)
	if base >= outageMaxInterval {
		return outageMaxInterval * 8 / 10, outageMaxInterval
	}
	return base * 8 / 10, min(base*12/10, outageMaxInterval)
}

// lastError is a deferral's result as Recipient.LastError records it.
func lastError(t *testing.T, d queue.Event) string {
	t.Helper()
	return queue.Result{Code: d.Code, Enhanced: d.Enhanced, Text: d.Text}.Describe()
}

// instants sorts the distinct times of ts.
func instants(ts []time.Time) []time.Time {
	out := slices.Clone(ts)
	slices.SortFunc(out, time.Time.Compare)
	return slices.CompactFunc(out, time.Time.Equal)
}

type dsnRecipient struct{ addr, action, status string }

// parseDSN reads a DSN's Arrival-Date and its per-recipient fields.
func parseDSN(data string) (arrival string, rs []dsnRecipient) {
	for _, line := range strings.Split(data, "\r\n") {
		name, value, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch name {
		case "Arrival-Date":
			arrival = value
		case "Final-Recipient":
			rs = append(rs, dsnRecipient{addr: strings.TrimPrefix(value, "rfc822; ")})
		case "Action":
			if len(rs) > 0 {
				rs[len(rs)-1].action = value
			}
		case "Status":
			if len(rs) > 0 {
				rs[len(rs)-1].status = value
			}
		}
	}
	return arrival, rs
}

// queueKeys returns the keys the queue left in the Pebble database in dir
// (those that start with 'q'); the spool must be closed.
func queueKeys(t *testing.T, dir string) []string {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, Logger: silentPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("q"), UpperBound: []byte("r")})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var keys []string
	for valid := it.First(); valid; valid = it.Next() {
		keys = append(keys, fmt.Sprintf("%q", it.Key()))
	}
	return keys
}

type silentPebble struct{}

func (silentPebble) Infof(string, ...any) {}
func (silentPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
