package queue

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// listed renders a page as "id-index:addr,addr ..." over the given ids.
func listed(ids []string, p ListPage) string {
	var out []string
	for _, m := range p.Messages {
		n := -1
		for i, id := range ids {
			if id == m.ID {
				n = i
			}
		}
		var addrs []string
		for _, r := range m.Recipients {
			addrs = append(addrs, r.Address)
		}
		out = append(out, fmt.Sprintf("%d:%s", n, strings.Join(addrs, ",")))
	}
	return strings.Join(out, " ")
}

// List lists messages oldest or newest first, filtered by recipient, age
// and the other selector fields, one page at a time.
func TestList(t *testing.T) { synctest.Test(t, list) }

func list(t *testing.T) {
	s := openSpool(t, Options{})
	var ids []string
	for i := range 4 {
		msg := &Message{Sender: []string{"acme", "beta"}[i%2], ReturnPath: "r@acme.test"}
		ids = append(ids, enqueue(t, s, msg, "body", fmt.Sprintf("u%d@a.test", i), fmt.Sprintf("u%d@b.test", i)))
		time.Sleep(time.Hour)
	}
	// Ages now: 4h, 3h, 2h, 1h.
	for _, tc := range []struct {
		name string
		opts ListOptions
		want string
	}{
		{"all", ListOptions{}, "0:u0@a.test,u0@b.test 1:u1@a.test,u1@b.test 2:u2@a.test,u2@b.test 3:u3@a.test,u3@b.test"},
		{"newest first", ListOptions{Newest: true, Limit: 2}, "3:u3@a.test,u3@b.test 2:u2@a.test,u2@b.test"},
		{"address", ListOptions{Selector: Selector{Recipient: "U2@B.test"}}, "2:u2@b.test"},
		{"@domain", ListOptions{Selector: Selector{Recipient: "@a.test"}, Limit: 1}, "0:u0@a.test"},
		{"older than", ListOptions{OlderThan: 150 * time.Minute}, "0:u0@a.test,u0@b.test 1:u1@a.test,u1@b.test"},
		{"newer than", ListOptions{NewerThan: 150 * time.Minute, Selector: Selector{Domain: "b.test"}}, "2:u2@b.test 3:u3@b.test"},
		{"sender", ListOptions{Selector: Selector{Sender: "beta"}, Newest: true}, "3:u3@a.test,u3@b.test 1:u1@a.test,u1@b.test"},
		{"typed ids", ListOptions{Selector: Selector{IDs: []string{strings.ToUpper(ids[2]), ids[0]}}, Newest: true}, "2:u2@a.test,u2@b.test 0:u0@a.test,u0@b.test"},
	} {
		p, err := s.List(tc.opts, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := listed(ids, p); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}

	// Paging: the pages together are the listing, without repeats.
	var got []string
	after := ""
	for range 10 {
		p, err := s.List(ListOptions{Newest: true, Limit: 3, After: after}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, listed(ids, p))
		if after = p.Next; after == "" {
			break
		}
	}
	if g := strings.Join(got, " | "); g != "3:u3@a.test,u3@b.test 2:u2@a.test,u2@b.test 1:u1@a.test,u1@b.test | 0:u0@a.test,u0@b.test" {
		t.Errorf("pages: %s", g)
	}
	p, _ := s.List(ListOptions{Selector: Selector{IDs: ids[:1]}}, nil)
	if len(p.Messages) != 1 || p.Messages[0].Size != 4 || p.Messages[0].Sender != "acme" || p.Messages[0].Received.IsZero() {
		t.Errorf("entry: %+v", p.Messages)
	}
	if _, err := s.List(ListOptions{Selector: Selector{IDs: []string{"nope"}}}, nil); err == nil {
		t.Error("List of a malformed ID succeeded")
	}
}

// Delete, Bounce and Flush select by message ID (as typed, in any case)
// and by recipient (address or @domain).
func TestSelectByIDAndRecipient(t *testing.T) { synctest.Test(t, selectByIDAndRecipient) }

func selectByIDAndRecipient(t *testing.T) {
	var ev events
	var fail sync.Map
	s := openSpool(t, Options{OnEvent: ev.add})
	startDispatcher(t, s, &dispatcher{decide: func(_ *Message, r Recipient) Result {
		if _, ok := fail.Load(r.Addr); ok {
			return Result{Status: Temporary, Code: 451, Text: "later"}
		}
		return Result{Status: Delivered, Code: 250}
	}})
	addrs := []string{"a@one.test", "b@one.test", "c@two.test"}
	for _, a := range addrs {
		fail.Store(a, true)
	}
	var ids []string
	for range 3 {
		ids = append(ids, enqueue(t, s, nil, "x", addrs...))
	}
	synctest.Wait()
	if st := s.Stats(); st.Deferred != 9 {
		t.Fatalf("stats: %+v", st)
	}
	fail.Clear()

	if n, err := s.Flush(Selector{IDs: []string{strings.ToUpper(ids[0])}, Recipient: "B@ONE.test"}, nil, nil); n != 1 || err != nil {
		t.Fatalf("Flush by id and address: %d %v", n, err)
	}
	synctest.Wait()
	if d := ev.of(EventDelivered); len(d) != 1 || d[0].MsgID != ids[0] || d[0].Recipient != "b@one.test" {
		t.Errorf("delivered: %+v", d)
	}
	if n, err := s.Delete(Selector{IDs: []string{strings.ToUpper(ids[1])}}, nil, false, nil); n != 3 || err != nil {
		t.Fatalf("Delete by id: %d %v", n, err)
	}
	if _, _, err := s.Show(ids[1]); err != ErrNotFound {
		t.Errorf("Show of a deleted message: %v", err)
	}
	if n, err := s.Bounce(Selector{Recipient: "@two.test"}, nil, "gone", false, nil); n != 2 || err != nil {
		t.Fatalf("Bounce by @domain: %d %v", n, err)
	}
	if n, err := s.Bounce(Selector{Recipient: "A@one.test"}, nil, "gone", true, nil); n != 2 || err != nil {
		t.Fatalf("Bounce by address (dry run): %d %v", n, err)
	}
	if _, err := s.Delete(Selector{IDs: []string{"not-an-id"}}, nil, false, nil); err == nil {
		t.Error("Delete of a malformed ID succeeded")
	}
	if st := s.Stats(); st.Recipients != 3 {
		t.Errorf("stats: %+v, want a@one.test of messages 0 and 2, c... gone", st)
	}
}

type nopDispatcher struct{}

func (nopDispatcher) Ready(string)   {}
func (nopDispatcher) Drained(string) {}

// A held message stays held across a restart: Take does not hand its
// recipients out, Flush leaves them alone, until Release.
func TestHoldSurvivesReopen(t *testing.T) { synctest.Test(t, holdSurvivesReopen) }

func holdSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Options{Dir: dir})
	s.Start(nopDispatcher{})
	held := enqueue(t, s, nil, "x", "a@one.test", "b@one.test")
	other := enqueue(t, s, nil, "y", "c@one.test")
	synctest.Wait()
	if s.Waiting("one.test") != 3 {
		t.Fatalf("%d waiting", s.Waiting("one.test"))
	}
	if n, err := s.Hold(Selector{IDs: []string{strings.ToUpper(held)}}, nil, nil); n != 2 || err != nil {
		t.Fatalf("Hold: %d %v", n, err)
	}
	if n, err := s.Hold(Selector{IDs: []string{held}}, nil, nil); n != 0 || err != nil {
		t.Errorf("Hold again: %d %v", n, err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	s = openSpool(t, Options{Dir: dir})
	s.Start(nopDispatcher{})
	synctest.Wait()
	take := func() *Lease {
		l, _ := s.Take("one.test", func(*Message) int { return 0 })
		return l
	}
	finish := func(l *Lease) {
		outs := make([]Outcome, len(l.Rcpts))
		for i := range outs {
			outs[i] = Outcome{Tried: true, Result: Result{Status: Delivered, Code: 250}}
		}
		s.Finish(l, outs, defaultRetry)
	}
	if l := take(); l == nil || l.Msg.ID != other {
		t.Fatalf("first lease: %+v, want %s only", l, other)
	} else {
		finish(l)
	}
	if l := take(); l != nil {
		t.Fatalf("held recipients taken: %+v", l.Rcpts)
	}
	if _, rs, err := s.Show(held); err != nil || len(rs) != 2 || !rs[0].Held || !rs[1].Held {
		t.Errorf("Show: %+v %v", rs, err)
	}
	if n, err := s.Flush(Selector{}, nil, nil); n != 0 || err != nil {
		t.Errorf("Flush of held recipients: %d %v", n, err)
	}
	if _, err := s.Release(Selector{}, nil, nil); err == nil {
		t.Error("Release with an empty selector succeeded")
	}
	if n, err := s.Release(Selector{Recipient: "a@one.test"}, nil, nil); n != 1 || err != nil {
		t.Fatalf("Release: %d %v", n, err)
	}
	synctest.Wait()
	l := take()
	if l == nil || len(l.Rcpts) != 1 || l.Rcpts[0].Addr != "a@one.test" || l.Rcpts[0].Held {
		t.Fatalf("after release: %+v", l)
	}
	finish(l)
	if n, err := s.Release(Selector{All: true}, nil, nil); n != 1 || err != nil {
		t.Fatalf("Release all: %d %v", n, err)
	}
	synctest.Wait()
	if l = take(); l == nil || l.Rcpts[0].Addr != "b@one.test" {
		t.Fatalf("after release all: %+v", l)
	}
	finish(l)
	if st := s.Stats(); st.Recipients != 0 {
		t.Errorf("stats: %+v", st)
	}
}
