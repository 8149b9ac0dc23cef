package queue

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"
)

// ListOptions select and order the messages of List.
type ListOptions struct {
	// Selector picks the recipients listed (All, or nothing: every one);
	// a message is listed when one of its recipients matches, with the
	// recipients that match.
	Selector Selector
	// OlderThan and NewerThan keep the messages received more (less) than
	// that long ago, by the spool's clock; 0 for no bound.
	OlderThan, NewerThan time.Duration
	// Newest lists the newest first; else the oldest first.
	Newest bool
	// After continues a listing after this message ID (the Next of the
	// previous page), in the same order.
	After string
	// Limit is the most messages listed (default DefaultListLimit, at
	// most MaxListLimit).
	Limit int
}

// Bounds of List.
const (
	DefaultListLimit = 100
	MaxListLimit     = 10000
)

// Listed is one message of a listing: what mailq shows.
type Listed struct {
	ID         string            `json:"id"`
	Received   time.Time         `json:"received"`
	Size       int               `json:"size"`
	Sender     string            `json:"sender"`
	ReturnPath string            `json:"return_path"`
	Campaign   string            `json:"campaign,omitempty"`
	Recipients []ListedRecipient `json:"recipients"`
}

// ListedRecipient is a recipient of a listed message.
type ListedRecipient struct {
	Address     string    `json:"address"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt,omitzero"` // zero while held
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Held        bool      `json:"held,omitempty"`
}

// ListPage is one page of a listing. Next, when not empty, is the After
// of the following page.
type ListPage struct {
	Messages []Listed `json:"messages"`
	Next     string   `json:"next,omitempty"`
}

// List lists the queued messages (by ID, that is by time of receipt),
// one page at a time: it iterates the message records and reads the
// recipients of one message at a time, so memory is proportional to the
// page, not to the queue.
func (s *Spool) List(opts ListOptions, siteOf SiteOf) (ListPage, error) {
	sel := opts.Selector
	if err := sel.normalize(); err != nil {
		return ListPage{}, fmt.Errorf("queue: list: %w", err)
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	lower, upper := []byte(prefixMsg), prefixEnd(prefixMsg)
	if opts.After != "" {
		after, ok := NormalizeID(opts.After)
		if !ok {
			return ListPage{}, fmt.Errorf("queue: list: after %q: not a message ID", opts.After)
		}
		if opts.Newest {
			upper = msgKey(after)
		} else {
			lower = append(msgKey(after), 0)
		}
	}
	done, err := s.readDB()
	if err != nil {
		return ListPage{}, err
	}
	defer done()
	now := s.now()
	mt := &matcher{sel: sel, siteOf: siteOf}
	page := ListPage{Messages: []Listed{}}
	visit := func(msg *Message) (more bool, err error) {
		age := now.Sub(msg.Received)
		if opts.OlderThan > 0 && age <= opts.OlderThan || opts.NewerThan > 0 && age >= opts.NewerThan {
			return true, nil
		}
		rcpts, _, err := s.recipients(msg.ID)
		if err != nil {
			return false, err
		}
		l := Listed{ID: msg.ID, Received: msg.Received, Size: msg.Size, Sender: msg.Sender, ReturnPath: msg.ReturnPath, Campaign: msg.Campaign}
		for i := range rcpts {
			r := &rcpts[i]
			if !mt.match(msg, r) {
				continue
			}
			lr := ListedRecipient{Address: r.Addr, Attempts: r.Attempts, LastAttempt: r.LastAttempt, LastError: r.LastError, Held: r.Held}
			if !r.Held {
				lr.NextAttempt = r.NextAttempt
			}
			l.Recipients = append(l.Recipients, lr)
		}
		if len(l.Recipients) == 0 {
			return true, nil
		}
		if len(page.Messages) == limit {
			page.Next = page.Messages[limit-1].ID
			return false, nil
		}
		page.Messages = append(page.Messages, l)
		return true, nil
	}
	if len(sel.IDs) > 0 {
		err = s.listIDs(sel.IDs, lower, upper, opts.Newest, visit)
	} else {
		err = s.listAll(lower, upper, opts.Newest, visit)
	}
	if err != nil {
		return ListPage{}, fmt.Errorf("queue: list: %w", err)
	}
	return page, nil
}

// listAll calls visit for the message records between lower and upper, in
// order or in reverse, until it returns false.
func (s *Spool) listAll(lower, upper []byte, reverse bool, visit func(*Message) (bool, error)) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	first, next := it.First, it.Next
	if reverse {
		first, next = it.Last, it.Prev
	}
	for valid := first(); valid; valid = next() {
		id := string(it.Key()[len(prefixMsg):])
		msg, err := decodeMessage(id, it.Value())
		if err != nil {
			return err
		}
		if more, err := visit(msg); err != nil || !more {
			return err
		}
	}
	return it.Error()
}

// listIDs calls visit for the messages of ids (sorted) that are queued and
// within the bounds.
func (s *Spool) listIDs(ids []string, lower, upper []byte, reverse bool, visit func(*Message) (bool, error)) error {
	for i := range ids {
		id := ids[i]
		if reverse {
			id = ids[len(ids)-1-i]
		}
		if k := string(msgKey(id)); k < string(lower) || k >= string(upper) {
			continue
		}
		v, closer, err := s.db.Get(msgKey(id))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		msg, err := decodeMessage(id, v)
		closer.Close()
		if err != nil {
			return err
		}
		if more, err := visit(msg); err != nil || !more {
			return err
		}
	}
	return nil
}
