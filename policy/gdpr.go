package policy

import (
	"errors"
	"slices"
)

// Held is everything policy holds about one address (GDPR art. 15): its
// consent history with proof (texts resolved), its suppression entries,
// its run of hard bounces, its engagement with each sender and its
// attributes with each (its name).
type Held struct {
	Address      string             `json:"address"`
	Consent      []Consent          `json:"consent"`
	Suppressions []Entry            `json:"suppressions"`
	HardBounces  Hygiene            `json:"hard_bounces"`
	Engagement   []SenderEngagement `json:"engagement"`
	Attributes   []SenderAttributes `json:"attributes"`
}

// SenderAttributes are an address's attributes with one sender.
type SenderAttributes struct {
	Sender     string            `json:"sender"`
	Attributes map[string]string `json:"attributes"`
}

// SenderEngagement is an address's engagement with one sender.
type SenderEngagement struct {
	Sender string `json:"sender"`
	Engagement
}

// Held returns what policy holds about addr; senders are the senders
// whose engagement records and attributes are looked up (the configured
// ones).
func (p *Policy) Held(addr string, senders []string) (*Held, error) {
	return p.held(addr, Any, senders)
}

// HeldBy returns what policy holds about addr that concerns sender: its
// consent with the sender's lists, the global entries and the sender's,
// its run of hard bounces, its engagement and attributes with the
// sender (the manage page's view).
func (p *Policy) HeldBy(addr, sender string) (*Held, error) {
	if sender == "" || sender == Any {
		return nil, invalidf("name the sender")
	}
	h, err := p.held(addr, sender, []string{sender})
	if err != nil {
		return nil, err
	}
	kept := h.Suppressions[:0]
	for _, e := range h.Suppressions {
		if e.Kind == Global || e.Sender == sender {
			kept = append(kept, e)
		}
	}
	h.Suppressions = kept
	return h, nil
}

func (p *Policy) held(addr, consentSender string, senders []string) (*Held, error) {
	a, err := Canonical(addr)
	if err != nil {
		return nil, &InvalidConsentError{Msg: err.Error()}
	}
	h := &Held{Address: a, Consent: []Consent{}, Suppressions: []Entry{}, Engagement: []SenderEngagement{}, Attributes: []SenderAttributes{}}
	if h.Consent, err = p.ConsentHistory(a, consentSender, Any); errors.Is(err, ErrNoConsent) || h.Consent == nil {
		h.Consent, err = []Consent{}, nil
	}
	if err != nil {
		return nil, err
	}
	if es, err := p.Entries(a); err != nil {
		return nil, err
	} else if es != nil {
		h.Suppressions = es
	}
	if h.HardBounces, err = p.cfg.Store.Hygiene(a); err != nil {
		return nil, err
	}
	for _, s := range slices.Sorted(slices.Values(senders)) {
		e, ok, err := p.cfg.Store.Engagement(s, a)
		if err != nil {
			return nil, err
		}
		if ok {
			h.Engagement = append(h.Engagement, SenderEngagement{Sender: s, Engagement: e})
		}
		attrs, err := p.cfg.Store.Attributes(s, a)
		if err != nil {
			return nil, err
		}
		if len(attrs) > 0 {
			h.Attributes = append(h.Attributes, SenderAttributes{Sender: s, Attributes: attrs})
		}
	}
	return h, nil
}
