package policy

import "time"

// Store is where policy keeps its state: the embedded Pebble store
// (NewPebbleStore) on one node, a shared store (Redis Cluster) for many.
// Addresses given to it are already normalised (Normalize). Every method
// is safe for concurrent use. The methods that change suppressions and
// consent records return only once the change is durable; the hygiene
// records (counters, engagement, statistics) may be written lazily, as
// a crash that loses the last second of them loses no promise made to
// anyone.
type Store interface {
	// Lookup appends the scope and reason of each entry of one address
	// to buf: the read of the recipient check, on the path of every RCPT,
	// which must cost about a microsecond.
	Lookup(addr string, buf []Brief) ([]Brief, error)
	// Suppressions returns the entries of one address, every scope.
	Suppressions(addr string) ([]Entry, error)
	// AddSuppressions adds entries, all or none (atomically). An entry
	// with the address, scope and reason of one already held is not
	// added again (the first one's source and time stay). It returns the
	// entries that were new.
	AddSuppressions(es []Entry) ([]Entry, error)
	// RemoveSuppressions removes the entries of addr that match: keep
	// reports, per entry, whether it stays. It returns those removed.
	RemoveSuppressions(addr string, remove func(Entry) bool) ([]Entry, error)
	// ScanSuppressions calls fn for every entry, in address order,
	// starting at the first address not before from.
	ScanSuppressions(from string, fn func(Entry) error) error

	// Hygiene is the hard-bounce record of one address (zero if none).
	Hygiene(addr string) (Hygiene, error)
	// Engagement is the record of an address with one sender (zero and
	// false if none).
	Engagement(sender, addr string) (Engagement, bool, error)
	// ScanEngagement calls fn for every address the sender has a record of.
	ScanEngagement(sender string, fn func(addr string, e Engagement) error) error
	// Stats returns the campaign counters of a sender from day since on,
	// one per day and campaign.
	Stats(sender string, since time.Time) ([]CampaignDay, error)
	// Message is what a received message was (sender, stream, campaign,
	// list), kept for the asynchronous reports about it.
	Message(id string) (MessageInfo, bool, error)
	// Apply writes a batch of hygiene records (not synced).
	Apply(u *Update) error
	// ForgetMessages removes the message records received before t.
	ForgetMessages(before time.Time) error

	// AppendConsent appends records to the consent histories, all or
	// none, durably (they are proof): each gets the next Seq of its
	// address's history with its list, and becomes its latest record.
	// It returns them with their Seq.
	AppendConsent(cs []Consent) ([]Consent, error)
	// LatestConsent is the status and number of the latest consent
	// record of addr with sender's list: the read of the recipient check
	// where consent is required, one point read.
	LatestConsent(sender, list, addr string) (ConsentHead, bool, error)
	// ConsentRecord is one record of a history, by its number.
	ConsentRecord(sender, list, addr string, seq uint64) (Consent, bool, error)
	// ConsentHistory is every record of addr with sender's list, oldest
	// first (without their texts).
	ConsentHistory(sender, list, addr string) ([]Consent, error)
	// ScanConsent calls fn with the latest record's head of every address
	// with sender's list (list Any: every list of the sender; sender Any:
	// every sender's), whose status is status ("" any), in the order of
	// sender, list and address; with one sender and one list, from the
	// first address not before from.
	ScanConsent(sender, list string, status ConsentStatus, from string, fn func(ConsentHead) error) error
	// ConsentLists are the senders and lists addr has consent records
	// with (an index by address: one short scan).
	ConsentLists(addr string) ([][2]string, error)
	// Erase deletes every record of addr, durably, and keeps marker, its
	// keyed hash, so that it stays suppressed; Erased lists the markers,
	// Unerase drops one; Purge makes what was deleted gone from the
	// store's files too.
	Erase(addr string, marker []byte) error
	Erased() ([][]byte, error)
	Unerase(marker []byte) error
	Purge() error
	// DeleteConsent removes the whole history of addr with sender's list,
	// durably (retention: a sign-up never confirmed, a consent ended
	// long ago).
	DeleteConsent(sender, list, addr string) error
	// PutConsentText stores a consent text once, durably, under its
	// SHA-256 (TextHash), which it returns.
	PutConsentText(text string) (string, error)
	// ConsentText is the text of a hash (false if none).
	ConsentText(hash string) (string, bool, error)

	// PutRepermission writes a re-permission campaign, durably: a new
	// one, or one that ended, with its counts. A list's campaigns are
	// named by their start.
	PutRepermission(r Repermission) error
	// Repermissions returns the re-permission campaigns of sender's list
	// (list Any: of every list of the sender; sender Any: every
	// sender's), in the order of sender, list and start.
	Repermissions(sender, list string) ([]Repermission, error)
	// Attributes are what an address told a sender about itself (its
	// name), by attribute name; none is an empty map.
	Attributes(sender, addr string) (map[string]string, error)
	// SetAttribute sets one attribute durably; value "" removes it.
	SetAttribute(sender, addr, name, value string) error

	Close() error
}

// Brief is what the recipient check needs of an entry.
type Brief struct {
	Scope
	Reason Reason
}

// Hygiene is an address's run of hard bounces.
type Hygiene struct {
	HardInARow int       `json:"hard_bounces_in_a_row"`
	LastHard   time.Time `json:"last_hard_bounce,omitzero"`
}

// Engagement is an address's history with one sender.
type Engagement struct {
	// Since counts the marketing messages delivered since the last
	// engagement (or ever, when none).
	Since       int       `json:"since_engaged"`
	Delivered   int       `json:"delivered"`
	LastMailed  time.Time `json:"last_mailed,omitzero"`
	LastEngaged time.Time `json:"last_engaged,omitzero"`
}

// Counts are a campaign's outcomes.
type Counts struct {
	Delivered        int `json:"delivered"`
	HardBounces      int `json:"hard_bounces"`
	SoftBounces      int `json:"soft_bounces"`
	ConfirmedBounces int `json:"confirmed_bounces"`
	Complaints       int `json:"complaints"`
	Unsubscribes     int `json:"unsubscribes"`
	SpamTrapHits     int `json:"spam_trap_hits"`
}

func (c *Counts) add(d Counts) {
	c.Delivered += d.Delivered
	c.HardBounces += d.HardBounces
	c.SoftBounces += d.SoftBounces
	c.ConfirmedBounces += d.ConfirmedBounces
	c.Complaints += d.Complaints
	c.Unsubscribes += d.Unsubscribes
	c.SpamTrapHits += d.SpamTrapHits
}

// CampaignDay is the counts of one campaign on one day (UTC).
type CampaignDay struct {
	Day      time.Time
	Campaign string
	Counts
}

// MessageInfo is what policy remembers of a received message.
type MessageInfo struct {
	Sender, Stream, Campaign, List string
	Received                       time.Time
}

// Update is a batch of hygiene records to write: whole records (the
// caller read and changed them) and counter increments.
type Update struct {
	Hygiene    map[string]Hygiene       // by address; a zero record is deleted
	Engagement map[[2]string]Engagement // by sender and address
	Stats      map[statKey]Counts       // increments
	Messages   map[string]MessageInfo   // by queue ID
}

type statKey struct {
	Sender, Campaign string
	Day              int64 // Unix day
}

func newUpdate() *Update {
	return &Update{Hygiene: map[string]Hygiene{}, Engagement: map[[2]string]Engagement{},
		Stats: map[statKey]Counts{}, Messages: map[string]MessageInfo{}}
}

func (u *Update) empty() bool {
	return len(u.Hygiene)+len(u.Engagement)+len(u.Stats)+len(u.Messages) == 0
}
