package policy

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// consentColumns are the columns of the CSV format of consent records,
// in export order. An import needs address; sender and list default to
// the import's; purposes are separated by spaces; for withdrawn and
// lapsed lines, time, ip, user_agent and source are the end's.
var consentColumns = []string{"sender", "list", "address", "status", "method", "time", "ip", "user_agent", "source",
	"text", "purposes", "confirmation_time", "confirmation_ip", "confirmation_user_agent"}

// ConsentImportOptions are a consent import's defaults and rules.
type ConsentImportOptions struct {
	Format Format
	// Sender and List are those of the lines that name none.
	Sender, List string
	// Source is the source of the lines that name none ("import:FILE").
	Source      string
	SkipInvalid bool
}

// consentLine reads a CSV line of consent records.
func consentLine(get func(string) string, def ConsentInput) (ConsentInput, error) {
	in := def
	in.Address = get("address")
	if v := get("sender"); v != "" {
		in.Sender = v
	}
	if v := get("list"); v != "" {
		in.List = v
	}
	in.Status, in.Method = ConsentStatus(get("status")), ConsentMethod(get("method"))
	in.IP, in.UserAgent, in.Text = get("ip"), get("user_agent"), get("text")
	if v := get("source"); v != "" {
		in.Source = v
	}
	in.Purposes = strings.Fields(get("purposes"))
	var err error
	if in.Time, err = csvTime(get("time"), "time"); err != nil {
		return in, err
	}
	ct, err := csvTime(get("confirmation_time"), "confirmation_time")
	if err != nil {
		return in, err
	}
	if ip, ua := get("confirmation_ip"), get("confirmation_user_agent"); !ct.IsZero() || ip != "" || ua != "" {
		in.Confirmation = &ConsentAct{Time: ct, IP: ip, UserAgent: ua}
	}
	return in, nil
}

func csvTime(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, fmt.Errorf("%s %q is not RFC 3339", name, v)
	}
	return t, nil
}

// lineError reports whether err is a line's fault (it is then an invalid
// line), not the store's.
func lineError(err error) bool {
	var ie *InvalidConsentError
	var se *SuppressedError
	return errors.As(err, &ie) || errors.As(err, &se) || errors.Is(err, ErrNoConsent)
}

// ImportConsent reads a file of consent records (CSV, consentColumns, or
// JSON lines of ConsentInput) and appends them in one atomic batch, in
// the file's order: a line may confirm or withdraw the consent an
// earlier one gave. Each line is checked as RecordConsent checks a
// record (proof, suppressions), and a confirmed double opt-in needs its
// confirmation_time. With an invalid line (reported with its number)
// nothing is committed unless SkipInvalid; a read error commits nothing
// either. A line that says what a record of its address's history
// already does is a duplicate, not appended again: importing a file (or
// an export) twice adds nothing the second time.
func (p *Policy) ImportConsent(r io.Reader, opts ConsentImportOptions) (*ImportResult, error) {
	p.consentMu.Lock()
	defer p.consentMu.Unlock()
	def := ConsentInput{Sender: opts.Sender, List: opts.List, Source: opts.Source}
	if def.Source == "" {
		def.Source = "import"
	}
	res := &ImportResult{}
	// The history of each address named, read once: the stored records
	// and those of the lines before.
	history := map[consentKey][]Consent{}
	hist := func(k consentKey) ([]Consent, error) {
		if cs, ok := history[k]; ok {
			return cs, nil
		}
		var cs []Consent
		if _, ok, err := p.cfg.Store.LatestConsent(k.sender, k.list, k.addr); err != nil {
			return nil, err
		} else if ok {
			if cs, err = p.cfg.Store.ConsentHistory(k.sender, k.list, k.addr); err != nil {
				return nil, err
			}
		}
		history[k] = cs
		return cs, nil
	}
	lookup := func(k consentKey) (Consent, bool, error) {
		cs, err := hist(k)
		if err != nil || len(cs) == 0 {
			return Consent{}, false, err
		}
		return cs[len(cs)-1], true, nil
	}
	var records []Consent
	texts := map[string]string{}
	var fatal error
	add := func(in ConsentInput) error {
		if fatal != nil {
			return nil
		}
		st := in.Status
		if in.Method == "" && (st == "" || st == ConsentConfirmed) && in.Confirmation == nil {
			in.Method = MethodImport
		}
		if st == ConsentConfirmed && in.Method == DoubleOptIn && (in.Confirmation == nil || in.Confirmation.Time.IsZero()) {
			return invalidf("an imported double opt-in confirmation needs its confirmation_time")
		}
		c, text, dup, err := p.prepareConsent(in, lookup)
		switch {
		case err != nil && !lineError(err):
			fatal = err
			return nil
		case err != nil:
			return err
		}
		k := consentKey{c.Sender, c.List, c.Address}
		for _, x := range history[k] {
			dup = dup || sameConsent(x, c)
		}
		if dup {
			res.Duplicates++
			return nil
		}
		if text != "" {
			texts[c.Proof.TextHash] = text
		}
		records = append(records, c)
		history[k] = append(history[k], c)
		return nil
	}
	err := readImport(r, opts.Format, res, func(get func(string) string) error {
		in, err := consentLine(get, def)
		if err != nil {
			return err
		}
		return add(in)
	}, func(text string) error {
		in := def
		if err := decodeLine(text, &in, "consent record"); err != nil {
			return err
		}
		return add(in)
	})
	if ie := (*ImportError)(nil); errors.As(err, &ie) {
		return res, err
	}
	if err == nil {
		err = fatal
	}
	if err != nil {
		return nil, err
	}
	if res.InvalidLines > 0 && !opts.SkipInvalid {
		res.Duplicates = 0
		return res, &ImportError{Result: res}
	}
	for _, t := range texts {
		if _, err := p.cfg.Store.PutConsentText(t); err != nil {
			return nil, fmt.Errorf("committing the import: %w (nothing imported)", err)
		}
	}
	if len(records) > 0 {
		if _, err := p.cfg.Store.AppendConsent(records); err != nil {
			return nil, fmt.Errorf("committing the import: %w (nothing imported)", err)
		}
	}
	res.Added, res.Committed = len(records), true
	return res, nil
}

// consentInput is a record as an import reads it: what ExportConsent
// writes.
func consentInput(c Consent) ConsentInput {
	in := ConsentInput{Sender: c.Sender, List: c.List, Address: c.Address, Status: c.Status, Method: c.Method}
	act := c.Proof.ConsentAct
	switch c.Status {
	case ConsentWithdrawn, ConsentLapsed:
		if c.Ended != nil {
			act = *c.Ended
		}
	default:
		in.Text, in.Purposes, in.Confirmation = c.Proof.Text, c.Proof.Purposes, c.Confirmation
	}
	in.Time, in.IP, in.UserAgent, in.Source = act.Time, act.IP, act.UserAgent, act.Source
	return in
}

// ExportConsent writes the consent history of sender's list (Any: of
// every list of the sender) as ImportConsent reads it: every record, in
// the order of list, address and number, with its text. It returns the
// number of records written.
func (p *Policy) ExportConsent(w io.Writer, format Format, sender, list string) (int, error) {
	if list == Any {
		if err := checkSenderList(sender, ""); err != nil {
			return 0, err
		}
	} else if err := checkSenderList(sender, list); err != nil {
		return 0, err
	}
	ex := newExporter(w, format, consentColumns)
	r := &resolver{s: p.cfg.Store, texts: map[string]string{}}
	n := 0
	err := p.cfg.Store.ScanConsent(sender, list, "", "", func(h ConsentHead) error {
		cs, err := p.cfg.Store.ConsentHistory(h.Sender, h.List, h.Address)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if err := r.resolve(&c); err != nil {
				return err
			}
			in := consentInput(c)
			n++
			err := ex.write(func() []string {
				var conf ConsentAct
				if in.Confirmation != nil {
					conf = *in.Confirmation
				}
				return []string{in.Sender, in.List, in.Address, string(in.Status), string(in.Method), rfc3339(in.Time), in.IP,
					in.UserAgent, in.Source, in.Text, strings.Join(in.Purposes, " "), rfc3339(conf.Time), conf.IP, conf.UserAgent}
			}, in)
			if err != nil {
				return err
			}
		}
		return nil
	})
	return n, ex.close(err)
}
