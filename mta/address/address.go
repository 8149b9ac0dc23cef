// Package address parses the mailboxes of SMTP paths: the address a
// client gives in MAIL FROM:<...> and RCPT TO:<...>, after go-smtp has
// taken away the angle brackets and any source route.
//
// Contract:
//
//   - Parse accepts exactly the Mailbox of RFC 5321 section 4.1.2:
//     Local-part "@" (Domain / address-literal), where the local part is a
//     Dot-string (atoms joined by single dots) or a Quoted-string
//     (qtextSMTP and quoted-pairSMTP), a domain is LDH labels that start
//     and end with a letter or digit (no empty label, no trailing dot),
//     and an address literal is [IPv4], [IPv6:...] or a
//     General-address-literal [tag:content]. Its limits are those of
//     section 4.5.3.1: 64 octets of local part, 255 of domain, 256 of path
//     (the mailbox and its angle brackets), and 63 octets a label.
//   - With utf8 (the client gave SMTPUTF8 on MAIL), RFC 6531 adds UTF-8 in
//     atoms and quoted strings and U-labels in the domain; each U-label
//     must be a valid IDNA label (golang.org/x/net/idna, the lookup rules
//     of RFC 5891 and UTS #46). Without utf8 a non-ASCII address is an
//     error that wraps ErrNeedSMTPUTF8 when it would be valid with it.
//   - An error is an *Error whose text says what is wrong, in words a
//     client can read ("two @", "empty label in domain", ...).
//   - Address.String is the canonical form: the local part unquoted when
//     it is a Dot-string, else quoted with only '"' and '\' escaped; the
//     domain in lower case (U-labels as the IDNA mapping gives them); an
//     IP literal as net/netip writes it. It keeps within the limits and
//     parses again, with the same utf8, to the same Address (FuzzParse
//     holds both).
//
// It is written by hand because no library parses SMTP paths: net/mail
// implements RFC 5322 addr-spec, which allows comments, folding white
// space, obsolete forms and domain literals that are not SMTP, and
// neither it nor the address parsers of other Go mail projects check the
// length limits, the LDH rule or address literals as RFC 5321 does.
package address

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits of RFC 5321 section 4.5.3.1, in octets.
const (
	MaxLocalPart = 64
	MaxDomain    = 255
	MaxPath      = 256 // mailbox and its angle brackets
	MaxLabel     = 63  // RFC 1035
)

// Address is a parsed mailbox.
type Address struct {
	// Local is the local part with quoting undone: `q x` for
	// "q x"@example.net, `a"b` for "a\"b"@example.net. Its case is kept.
	Local string
	// Domain is the domain in lower case (U-labels as such, mapped and
	// checked by IDNA), or an address literal with its brackets.
	Domain string
}

// String is the canonical form of the address.
func (a Address) String() string {
	return quoteLocal(a.Local) + "@" + a.Domain
}

// IsLiteral reports whether the domain is an address literal.
func (a Address) IsLiteral() bool { return strings.HasPrefix(a.Domain, "[") }

// ASCIIDomain is the domain with its U-labels as A-labels (xn--...), as
// DNS and a peer without SMTPUTF8 know it.
func (a Address) ASCIIDomain() string {
	if isASCII(a.Domain) {
		return a.Domain
	}
	d, err := idnaProfile.ToASCII(a.Domain)
	if err != nil {
		return a.Domain // not reached: Parse checked it
	}
	return d
}

// Error says what is wrong with an address.
type Error struct {
	Reason string
	err    error // ErrNeedSMTPUTF8 or nil
}

func (e *Error) Error() string { return e.Reason }
func (e *Error) Unwrap() error { return e.err }

// ErrNeedSMTPUTF8 is wrapped by the error of an address that is valid
// only under SMTPUTF8 and was parsed without it.
var ErrNeedSMTPUTF8 = errors.New("address needs SMTPUTF8")

func fail(format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

// idnaProfile checks U-labels: the lookup mapping (case folding, NFC),
// STD3 rules, hyphens, joiners and the bidi rule.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.StrictDomainName(true),
	idna.CheckHyphens(true),
	idna.CheckJoiners(true),
	idna.Transitional(false),
)

// Parse parses the mailbox of a path, without its angle brackets; utf8
// says whether the client gave SMTPUTF8.
func Parse(s string, utf8 bool) (Address, error) {
	a, err := parse(s, utf8)
	if err != nil && !utf8 && !isASCII(s) {
		if _, err8 := parse(s, true); err8 == nil {
			return Address{}, &Error{Reason: "non-ASCII address needs SMTPUTF8", err: ErrNeedSMTPUTF8}
		}
	}
	return a, err
}

func parse(s string, utf8ok bool) (Address, error) {
	if s == "" {
		return Address{}, fail("empty address")
	}
	if len(s)+2 > MaxPath {
		return Address{}, fail("path longer than %d octets", MaxPath)
	}
	if !utf8.ValidString(s) {
		return Address{}, fail("invalid UTF-8")
	}
	var local, rest string
	var err error
	if s[0] == '"' {
		local, rest, err = parseQuoted(s, utf8ok)
		if err != nil {
			return Address{}, err
		}
		if rest == "" {
			return Address{}, fail("no @ after the local part")
		}
		if rest[0] != '@' {
			return Address{}, fail("quoted string must be the whole local part")
		}
		rest = rest[1:]
		if len(s)-len(rest)-1 > MaxLocalPart {
			return Address{}, fail("local part longer than %d octets", MaxLocalPart)
		}
	} else {
		at := strings.IndexByte(s, '@')
		if at < 0 {
			return Address{}, fail("no @ in address")
		}
		if strings.Count(s, "@") > 1 {
			return Address{}, fail("two @")
		}
		local, rest = s[:at], s[at+1:]
		if err := checkDotString(local, utf8ok); err != nil {
			return Address{}, err
		}
		if len(local) > MaxLocalPart {
			return Address{}, fail("local part longer than %d octets", MaxLocalPart)
		}
	}
	if strings.IndexByte(rest, '@') >= 0 {
		return Address{}, fail("two @")
	}
	domain, err := parseDomain(rest, utf8ok)
	if err != nil {
		return Address{}, err
	}
	a := Address{Local: local, Domain: domain}
	// The canonical form is no longer than the input, except where the
	// IDNA mapping of a U-label grows it.
	if c := a.String(); len(c)+2 > MaxPath {
		return Address{}, fail("path longer than %d octets", MaxPath)
	}
	return a, nil
}

// parseQuoted reads the Quoted-string at the start of s and returns its
// content unquoted and what follows it.
func parseQuoted(s string, utf8ok bool) (content, rest string, err error) {
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], nil
		case c == '\\':
			if i+1 == len(s) {
				return "", "", fail("unterminated quoted string")
			}
			n := s[i+1]
			if n < 32 || n > 126 {
				return "", "", fail("%s after a backslash in local part", describe(rune(n)))
			}
			b.WriteByte(n)
			i += 2
		case c >= 0x80:
			if !utf8ok {
				return "", "", fail("non-ASCII character in local part needs SMTPUTF8")
			}
			_, size := utf8.DecodeRuneInString(s[i:])
			b.WriteString(s[i : i+size])
			i += size
		case c < 32 || c == 127:
			return "", "", fail("%s in local part", describe(rune(c)))
		default: // qtextSMTP: 32-126 but '"' and '\'
			b.WriteByte(c)
			i++
		}
	}
	return "", "", fail("unterminated quoted string")
}

// checkDotString checks an unquoted local part.
func checkDotString(local string, utf8ok bool) error {
	if local == "" {
		return fail("empty local part")
	}
	if local[0] == '.' {
		return fail("local part starts with a dot")
	}
	if local[len(local)-1] == '.' {
		return fail("local part ends with a dot")
	}
	if strings.Contains(local, "..") {
		return fail("two dots in a row in local part")
	}
	for _, r := range local {
		switch {
		case r == '.' || isAtext(r):
		case r >= 0x80:
			if !utf8ok {
				return fail("non-ASCII character in local part needs SMTPUTF8")
			}
		case r < 32 || r == 127:
			return fail("%s in local part", describe(r))
		default:
			return fail("%s in local part must be quoted", describe(r))
		}
	}
	return nil
}

func isAtext(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

// isDotString reports whether local can be written unquoted (with
// UTF-8 allowed: a non-ASCII local part parses only under SMTPUTF8).
func isDotString(local string) bool {
	if local == "" || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for _, r := range local {
		if r != '.' && !isAtext(r) && r < 0x80 {
			return false
		}
	}
	return true
}

func quoteLocal(local string) string {
	if isDotString(local) {
		return local
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		if c := local[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
	return b.String()
}

// parseDomain checks a Domain or address-literal and returns its
// canonical form.
func parseDomain(d string, utf8ok bool) (string, error) {
	if d == "" {
		return "", fail("missing domain")
	}
	if len(d) > MaxDomain {
		return "", fail("domain longer than %d octets", MaxDomain)
	}
	if d[0] == '[' {
		return parseLiteral(d)
	}
	if d[0] == '.' {
		return "", fail("domain starts with a dot")
	}
	if d[len(d)-1] == '.' {
		return "", fail("domain ends with a dot")
	}
	ascii := true
	for label := range strings.SplitSeq(d, ".") {
		if label == "" {
			return "", fail("empty label in domain")
		}
		if !isASCII(label) {
			if !utf8ok {
				return "", fail("non-ASCII domain needs SMTPUTF8")
			}
			ascii = false
			continue // checked by IDNA below
		}
		if err := checkLDH(label); err != nil {
			return "", err
		}
	}
	if ascii {
		return strings.ToLower(d), nil
	}
	a, err := idnaProfile.ToASCII(d)
	if err != nil {
		return "", fail("invalid internationalized domain name (%s)", idnaReason(err))
	}
	if len(a) > MaxDomain {
		return "", fail("domain longer than %d octets as A-labels", MaxDomain)
	}
	for label := range strings.SplitSeq(a, ".") {
		if label == "" {
			return "", fail("empty label in domain")
		}
		if len(label) > MaxLabel {
			return "", fail("label longer than %d octets as an A-label", MaxLabel)
		}
	}
	u, err := idnaProfile.ToUnicode(a)
	if err != nil {
		return "", fail("invalid internationalized domain name (%s)", idnaReason(err))
	}
	if len(u) > MaxDomain {
		return "", fail("domain longer than %d octets", MaxDomain)
	}
	return u, nil
}

// idnaReason is the idna package's error without its prefix and without
// the (possibly long, possibly odd) label it quotes.
func idnaReason(err error) string {
	s := strings.TrimPrefix(err.Error(), "idna: ")
	if i := strings.Index(s, ` "`); i >= 0 {
		s = s[:i]
	}
	return s
}

// checkLDH checks an ASCII label: sub-domain = Let-dig [Ldh-str].
func checkLDH(label string) error {
	if len(label) > MaxLabel {
		return fail("label longer than %d octets", MaxLabel)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		default:
			return fail("%s in domain", describe(rune(c)))
		}
	}
	if label[0] == '-' {
		return fail("label starts with a hyphen")
	}
	if label[len(label)-1] == '-' {
		return fail("label ends with a hyphen")
	}
	return nil
}

// parseLiteral checks an address-literal: "[" ( IPv4-address-literal /
// IPv6-address-literal / General-address-literal ) "]".
func parseLiteral(d string) (string, error) {
	if len(d) < 2 || d[len(d)-1] != ']' {
		return "", fail("unterminated address literal")
	}
	if len(d) == 2 {
		return "", fail("empty address literal")
	}
	in := d[1 : len(d)-1]
	tag, content, hasTag := strings.Cut(in, ":")
	switch {
	case !hasTag:
		ip, ok := parseIPv4(in)
		if !ok {
			return "", fail("malformed IPv4 address literal")
		}
		return "[" + ip + "]", nil
	case strings.EqualFold(tag, "IPv6"):
		ip, ok := parseIPv6(content)
		if !ok {
			return "", fail("malformed IPv6 address literal")
		}
		return "[IPv6:" + ip + "]", nil
	}
	// General-address-literal = Standardized-tag ":" 1*dcontent, where
	// Standardized-tag is an Ldh-str.
	if tag == "" || tag[len(tag)-1] == '-' {
		return "", fail("malformed address literal tag")
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return "", fail("malformed address literal tag")
		}
	}
	if content == "" {
		return "", fail("empty address literal")
	}
	for i := 0; i < len(content); i++ {
		if c := content[i]; c < 33 || c > 126 || c == '[' || c == '\\' || c == ']' {
			return "", fail("%s in address literal", describe(rune(c)))
		}
	}
	return d, nil
}

// parseIPv4 reads 4 Snum (1*3DIGIT, 0-255) and returns them without
// leading zeros.
func parseIPv4(s string) (string, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return "", false
	}
	for i, p := range parts {
		if len(p) < 1 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return "", false
		}
		n, _ := strconv.Atoi(p)
		if n > 255 {
			return "", false
		}
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, "."), true
}

// parseIPv6 reads IPv6-addr: full, compressed (at most 6 groups beside
// the "::"), and both with a trailing IPv4 address (then at most 6 and 4
// groups). It returns the address as net/netip writes it.
func parseIPv6(s string) (string, bool) {
	if s == "" || strings.Trim(s, "0123456789abcdefABCDEF:.") != "" {
		return "", false // no zone, no space
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is6() || ip.Zone() != "" {
		return "", false
	}
	if head, tail, comp := strings.Cut(s, "::"); comp {
		groups := 0
		for _, part := range []string{head, tail} {
			for g := range strings.SplitSeq(part, ":") {
				if g != "" && !strings.Contains(g, ".") {
					groups++
				}
			}
		}
		max := 6
		if strings.Contains(s, ".") {
			max = 4
		}
		if groups > max {
			return "", false
		}
	}
	return ip.String(), true
}

// describe names a character for an error text.
func describe(r rune) string {
	switch {
	case r == ' ':
		return "space"
	case r == '\t':
		return "tab"
	case r == '\r':
		return "carriage return"
	case r == '\n':
		return "line feed"
	case r < 32 || r == 127:
		return fmt.Sprintf("control character 0x%02X", r)
	}
	return fmt.Sprintf("character %q", r)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
