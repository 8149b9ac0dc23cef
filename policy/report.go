package policy

import (
	"slices"
	"time"
)

// BounceRateLimit is the bounce rate above which a campaign is flagged:
// 2 %, the figure mailbox providers and ESPs hold senders to.
const BounceRateLimit = 0.02

// SunsetSteps are the numbers of marketing messages without engagement
// that reports count non-engagers for.
var SunsetSteps = []int{5, 10, 20, 30}

// CampaignReport is one campaign's outcomes.
type CampaignReport struct {
	Campaign string `json:"campaign"`
	Counts
	// BounceRate is bounces (hard and soft) over messages that got an
	// answer (delivered and bounced).
	BounceRate float64 `json:"bounce_rate"`
	Flagged    bool    `json:"flagged"` // BounceRate above BounceRateLimit
}

func (c *CampaignReport) rate() {
	sent := c.Delivered + c.HardBounces + c.SoftBounces
	if sent > 0 {
		c.BounceRate = float64(c.HardBounces+c.SoftBounces) / float64(sent)
	}
	c.Flagged = c.BounceRate > BounceRateLimit
}

// Report is a sender's list hygiene.
type Report struct {
	Sender    string           `json:"sender"`
	Since     time.Time        `json:"since,omitzero"`
	Campaigns []CampaignReport `json:"campaigns"`
	Total     CampaignReport   `json:"total"`
	// NonEngagers counts, for each of SunsetSteps, the recipients who
	// got at least that many marketing messages and engaged with none.
	NonEngagers map[int]int `json:"non_engagers"`
	Recipients  int         `json:"recipients"` // addresses the sender has a record of
}

// Report makes sender's report, for one campaign ("" for every one) from
// day since on (zero: all).
func (p *Policy) Report(sender, campaign string, since time.Time) (*Report, error) {
	days, err := p.cfg.Store.Stats(sender, since)
	if err != nil {
		return nil, err
	}
	rep := &Report{Sender: sender, Since: since, NonEngagers: map[int]int{}, Campaigns: []CampaignReport{}}
	by := map[string]*CampaignReport{}
	for _, d := range days {
		if campaign != "" && d.Campaign != campaign {
			continue
		}
		c := by[d.Campaign]
		if c == nil {
			c = &CampaignReport{Campaign: d.Campaign}
			by[d.Campaign] = c
		}
		c.add(d.Counts)
		rep.Total.add(d.Counts)
	}
	for _, c := range by {
		c.rate()
		rep.Campaigns = append(rep.Campaigns, *c)
	}
	slices.SortFunc(rep.Campaigns, func(a, b CampaignReport) int {
		switch {
		case a.Campaign < b.Campaign:
			return -1
		case a.Campaign > b.Campaign:
			return 1
		}
		return 0
	})
	rep.Total.Campaign = campaign
	rep.Total.rate()
	for _, n := range SunsetSteps {
		rep.NonEngagers[n] = 0
	}
	err = p.cfg.Store.ScanEngagement(sender, func(addr string, e Engagement) error {
		rep.Recipients++
		for _, n := range SunsetSteps {
			if e.Since >= n {
				rep.NonEngagers[n]++
			}
		}
		return nil
	})
	return rep, err
}

// Removal is an address a sender should take off its list, and why.
type Removal struct {
	Address string `json:"address"`
	Reason  string `json:"reason"` // a suppression reason, or "inactive" for a non-engager
	Scope   string `json:"scope,omitempty"`
	List    string `json:"list,omitempty"`
}

// ToRemove calls fn for every address the sender has mailed that is
// suppressed for it (any list) or, with inactive > 0, that engaged with
// none of its last inactive marketing messages.
func (p *Policy) ToRemove(sender string, inactive int, fn func(Removal) error) error {
	return p.cfg.Store.ScanEngagement(sender, func(addr string, e Engagement) error {
		es, err := p.cfg.Store.Suppressions(addr)
		if err != nil {
			return err
		}
		for _, x := range es {
			if x.Kind == Global || x.Sender == sender {
				return fn(Removal{Address: addr, Reason: string(x.Reason), Scope: string(x.Kind), List: x.List})
			}
		}
		if inactive > 0 && e.Since >= inactive {
			return fn(Removal{Address: addr, Reason: string(Inactive)})
		}
		return nil
	})
}
