package mtasts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TXTLookup looks up the TXT records of a name ("_mta-sts.example.com").
// Each string returned is one record, its character-strings concatenated
// (RFC 8461 §3.1). A name without TXT records gives (nil, nil) or an error
// that is a *net.DNSError with IsNotFound set, so *net.Resolver also
// satisfies TXTLookup.
type TXTLookup interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// DNSLookup returns a TXTLookup that asks the recursive resolver at server
// ("host:port"; port 53 when omitted) over UDP, retrying over TCP when the
// answer is truncated. timeout bounds each exchange.
func DNSLookup(server string, timeout time.Duration) TXTLookup {
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	return &dnsLookup{server: server, timeout: timeout}
}

type dnsLookup struct {
	server  string
	timeout time.Duration
}

func (d *dnsLookup) LookupTXT(ctx context.Context, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	m.SetEdns0(1232, false)
	r, err := d.exchange(ctx, "udp", m)
	if err == nil && r.Truncated {
		r, err = d.exchange(ctx, "tcp", m)
	}
	if err != nil {
		return nil, err
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, nil
	default:
		return nil, fmt.Errorf("mtasts: TXT %s: resolver %s answered %s", name, d.server, dns.RcodeToString[r.Rcode])
	}
	var records []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			records = append(records, strings.Join(txt.Txt, ""))
		}
	}
	return records, nil
}

func (d *dnsLookup) exchange(ctx context.Context, network string, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: d.timeout}
	r, _, err := c.ExchangeContext(ctx, m, d.server)
	if err != nil {
		return nil, fmt.Errorf("mtasts: TXT %s over %s to %s: %w", m.Question[0].Name, network, d.server, err)
	}
	return r, nil
}

// errNoRecord means the domain publishes no usable "_mta-sts" TXT record.
var errNoRecord = errors.New("no valid MTA-STS TXT record")

// policyID looks up the "_mta-sts" TXT record of domain and returns its id.
// It returns errNoRecord (wrapped) when RFC 8461 §3.1 says the domain has no
// available policy: no record, more than one record starting with
// "v=STSv1", or an invalid one. Any other error is a lookup failure.
func policyID(ctx context.Context, txt TXTLookup, domain string) (string, error) {
	records, err := txt.LookupTXT(ctx, "_mta-sts."+domain)
	if dnsErr := (*net.DNSError)(nil); errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		records, err = nil, nil
	}
	if err != nil {
		return "", err
	}
	var sts []string
	for _, r := range records {
		if rest, ok := strings.CutPrefix(r, "v=STSv1"); ok && (rest == "" || strings.ContainsAny(rest[:1], "; \t")) {
			sts = append(sts, r)
		}
	}
	if len(sts) != 1 {
		return "", fmt.Errorf("%w: %d records start with v=STSv1", errNoRecord, len(sts))
	}
	return parseTXT(sts[0])
}

// parseTXT parses an "_mta-sts" TXT record (RFC 8461 §3.1):
// "v=STSv1; id=20160831085700Z;" with optional extension fields, and
// returns its id. Errors wrap errNoRecord.
func parseTXT(record string) (string, error) {
	fields := strings.Split(record, ";")
	if strings.Trim(fields[len(fields)-1], " \t") == "" {
		fields = fields[:len(fields)-1] // optional final delimiter
	}
	if len(fields) == 0 || strings.TrimRight(fields[0], " \t") != "v=STSv1" {
		return "", fmt.Errorf("%w: %q does not start with v=STSv1", errNoRecord, record)
	}
	var id string
	for _, f := range fields[1:] {
		name, value, ok := strings.Cut(strings.Trim(f, " \t"), "=")
		switch {
		case !ok:
			return "", fmt.Errorf("%w: field %q of %q has no =", errNoRecord, f, record)
		case name == "id":
			if id != "" {
				return "", fmt.Errorf("%w: id repeated in %q", errNoRecord, record)
			}
			if !validID(value) {
				return "", fmt.Errorf("%w: id %q is not 1-32 letters and digits", errNoRecord, value)
			}
			id = value
		case !validExtName(name) || !validTXTExtValue(value):
			return "", fmt.Errorf("%w: field %q of %q is invalid", errNoRecord, f, record)
		}
	}
	if id == "" {
		return "", fmt.Errorf("%w: no id in %q", errNoRecord, record)
	}
	return id, nil
}

// validID checks sts-id: 1–32 letters and digits.
func validID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

// validTXTExtValue checks sts-ext-value: printable ASCII without space, "="
// or ";".
func validTXTExtValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '=' || c == ';' {
			return false
		}
	}
	return true
}
