package engine

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"drover/queue"
	"drover/queue/shaping"
)

// poolEnvelope gives each sender its pool; no VERP.
type poolEnvelope map[string]string

func (poolEnvelope) PerRecipient(*queue.Message) bool                      { return false }
func (poolEnvelope) ReturnPath(m *queue.Message, _ queue.Recipient) string { return m.ReturnPath }
func (e poolEnvelope) Pool(m *queue.Message) string                        { return e[m.Sender] }

// envPlanner is a fakePlanner whose plans carry an Envelope and a pool.
type envPlanner struct {
	fakePlanner
	env  Envelope
	pool string
}

func (p *envPlanner) Plan(ctx context.Context, dest string) (*Plan, error) {
	plan, err := p.fakePlanner.Plan(ctx, dest)
	if plan != nil {
		plan.Envelope, plan.Limits.Pool = p.env, p.pool
	}
	return plan, err
}

// poolCourier records the pool of every connection and of every
// transaction run on it.
type poolCourier struct {
	mu    sync.Mutex
	opens []string          // pool of each Open
	txs   map[string]string // sender -> pool of the connection that carried it
}

type poolConn struct {
	c    *poolCourier
	pool string
}

func (c *poolCourier) Open(_ context.Context, _ string, _ *Plan, pool string) (Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opens = append(c.opens, pool)
	return &poolConn{c: c, pool: pool}, nil
}

func (k *poolConn) Deliver(_ context.Context, msg *queue.Message, _ string, rcpts []queue.Recipient, _ []byte) ([]queue.Result, error) {
	k.c.mu.Lock()
	defer k.c.mu.Unlock()
	if prev, ok := k.c.txs[msg.Sender]; ok && prev != k.pool {
		k.c.txs[msg.Sender] = "mixed"
	} else {
		k.c.txs[msg.Sender] = k.pool
	}
	res := make([]queue.Result, len(rcpts))
	for i := range res {
		res[i].Status = queue.Delivered
	}
	return res, nil
}

func (k *poolConn) Close() error { return nil }

// A sender's pool wins over the destination's: every transaction goes out
// on a connection from its sender's pool, and a sender without one uses
// the plan's.
func TestSenderPools(t *testing.T) { synctest.Test(t, senderPools) }

func senderPools(t *testing.T) {
	cour := &poolCourier{txs: map[string]string{}}
	planner := &envPlanner{env: poolEnvelope{"shop": "marketing", "bank": "transactional"}, pool: "site-pool"}
	var ev events
	tb := newTestbed(t, queue.Options{OnEvent: ev.add}, Config{Planner: planner, Courier: cour, IdleTimeout: 1 << 40})
	// One connection at a time, so that it must switch pools between
	// messages of different senders.
	planner.limits = func(site, dest string) (l shaping.Limits) { l.MaxConnections = 1; return l }
	for _, sender := range []string{"shop", "bank", "shop", "other", "bank"} {
		enqueue(t, tb.spool, &queue.Message{Sender: sender, ReturnPath: "app@" + sender + ".test"}, "x", "a@d.test", "b@d.test")
	}
	tb.wait("deliveries", func() bool { return len(ev.of(queue.EventDelivered)) == 10 })
	cour.mu.Lock()
	defer cour.mu.Unlock()
	want := map[string]string{"shop": "marketing", "bank": "transactional", "other": "site-pool"}
	for sender, pool := range want {
		if got := cour.txs[sender]; got != pool {
			t.Errorf("%s's mail went out from pool %q, want %q", sender, got, pool)
		}
	}
	if len(cour.opens) < 3 {
		t.Errorf("opens %v: want a connection per pool at least", cour.opens)
	}
}
