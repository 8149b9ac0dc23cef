package bounce

import (
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed rules.yaml
var defaultRulesYAML []byte

// Reasons is the reason vocabulary (Sisimai v5), the values of
// Classification.Reason.
var Reasons = []string{
	"authfailure", "badreputation", "blocked", "contenterror", "delivered",
	"exceedlimit", "expired", "failedstarttls", "feedback", "filtered",
	"hasmoved", "hostunknown", "mailboxfull", "mailererror", "mesgtoobig",
	"networkerror", "norelaying", "notaccept", "notcompliantrfc", "onhold",
	"policyviolation", "rejected", "requireptr", "securityerror",
	"spamdetected", "speeding", "suppressed", "suspend", "syntaxerror",
	"systemerror", "systemfull", "toomanyconn", "undefined", "userunknown",
	"vacation", "virusdetected",
}

// Rule is an admin rule from the config, tried before the embedded table.
// Pattern is a regular expression (case-insensitive) on the diagnostic
// text; Status, when set, limits the rule to status codes starting with
// it ("5.7." or "4."); Host, when set, limits it to remote MTAs or
// recipient domains ending in it. A rule with an empty Pattern matches on
// Status and Host alone. Reason must be in Reasons.
type Rule struct {
	Pattern string `yaml:"pattern" json:"pattern"`
	Status  string `yaml:"status" json:"status"`
	Host    string `yaml:"host" json:"host"`
	Reason  string `yaml:"reason" json:"reason"`
}

// ruleFile is the schema of rules.yaml (documented in the file).
type ruleFile struct {
	Reasons map[string][]string `yaml:"reasons"`
	Unless  map[string][]string `yaml:"unless"`
	Order   struct {
		First    []string `yaml:"first"`
		Phrases  []string `yaml:"phrases"`
		Fallback []string `yaml:"fallback"`
	} `yaml:"order"`
	Status     map[string]string `yaml:"status"`
	Pseudo     map[string]string `yaml:"pseudo"`
	Category   map[string]string `yaml:"category"`
	Categories []categoryRule    `yaml:"categories"`
	Commands   []commandRule     `yaml:"commands"`
	LastResort []lastResortRule  `yaml:"lastresort"`
	Hints      []hintRule        `yaml:"hints"`
	Providers  []provider        `yaml:"providers"`
}

// categoryRule refines the category of some reasons by wording.
type categoryRule struct {
	Reasons  []string `yaml:"reasons"`
	Phrase   string   `yaml:"phrase"`
	Category string   `yaml:"category"`
	phrase   phrase
}

type commandRule struct {
	Command string   `yaml:"command"`
	Phrases []string `yaml:"phrases"`
	phrases []phrase
}

// lastResortRule names the reason of words that say what went wrong
// without being a server's reply; see "lastresort" in rules.yaml.
type lastResortRule struct {
	Reason  string   `yaml:"reason"`
	Phrases []string `yaml:"phrases"`
	phrases []phrase
}

// hintRule is a format-specific wording; see "hints" in rules.yaml.
type hintRule struct {
	Phrase  string `yaml:"phrase"`
	Pattern string `yaml:"pattern"`
	Reason  string `yaml:"reason"`
	Command string `yaml:"command"`
	From    string `yaml:"from"`
	Subject string `yaml:"subject"`
	Scope   string `yaml:"scope"` // "report" or "" (the recipient's text)
	phrase  phrase
	re      *regexp.Regexp
	fromRe  *regexp.Regexp
	subjRe  *regexp.Regexp
}

// provider is a per-provider rule set; see "providers" in rules.yaml.
type provider struct {
	Name  string   `yaml:"name"`
	Hosts []string `yaml:"hosts"`
	Rules []struct {
		Phrase string `yaml:"phrase"`
		Status string `yaml:"status"`
		Reason string `yaml:"reason"`
		phrase phrase
	} `yaml:"rules"`
}

// phrase is a compiled phrase: its fragments must occur in order. grams
// holds, for each fragment of three bytes or more, the hashes of three of
// its trigrams (see textIndex).
type phrase struct {
	frags []string
	grams [][3]uint32
}

func compilePhrase(s string) phrase {
	s = foldSpace(strings.ToLower(s))
	p := phrase{frags: []string{s}}
	if strings.Contains(s, " * ") {
		p.frags = strings.Split(s, " * ")
	}
	for _, f := range p.frags {
		var g [3]uint32
		if n := len(f); n >= 3 {
			g = [3]uint32{trigramHash(f[0], f[1], f[2]), trigramHash(f[n-3], f[n-2], f[n-1]), trigramHash(f[(n-3)/2], f[(n-3)/2+1], f[(n-3)/2+2])}
		}
		p.grams = append(p.grams, g)
	}
	return p
}

func (p phrase) in(text string) bool {
	for _, frag := range p.frags {
		i := strings.Index(text, frag)
		if i < 0 {
			return false
		}
		text = text[i+len(frag):]
	}
	return len(p.frags) > 0
}

// ruleSet is the compiled form of the embedded table plus admin rules.
type ruleSet struct {
	reasonIdx map[string]int // reason name -> index in phrasesOf
	phrasesOf [][]phrase     // phrases of each reason
	unlessOf  [][]phrase     // words that keep a reason's phrases from counting
	names     []string       // reason names by index
	first     []string
	phrases   []string
	fallback  []string
	status    map[string]string
	pseudo    map[string]string
	category  map[string]string
	catRules  []categoryRule
	commands  []commandRule
	last      []lastResortRule
	hints     []hintRule
	providers []provider
	extra     []compiledRule
}

type compiledRule struct {
	Rule
	re *regexp.Regexp
}

func isReason(r string) bool {
	_, ok := slices.BinarySearch(Reasons, r)
	return ok
}

// loadRules compiles the embedded table and the admin rules.
func loadRules(data []byte, extra []Rule) (*ruleSet, error) {
	var f ruleFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("bounce rules: %w", err)
	}
	rs := &ruleSet{
		reasonIdx: map[string]int{},
		first:     f.Order.First,
		phrases:   f.Order.Phrases,
		fallback:  f.Order.Fallback,
		status:    f.Status,
		pseudo:    f.Pseudo,
		category:  f.Category,
		catRules:  f.Categories,
		commands:  f.Commands,
		last:      f.LastResort,
		hints:     f.Hints,
		providers: f.Providers,
	}
	for _, r := range Reasons {
		rs.reasonIdx[r] = len(rs.names)
		rs.names = append(rs.names, r)
		var ps []phrase
		for _, s := range f.Reasons[r] {
			ps = append(ps, compilePhrase(s))
		}
		rs.phrasesOf = append(rs.phrasesOf, ps)
		var us []phrase
		for _, s := range f.Unless[r] {
			us = append(us, compilePhrase(s))
		}
		rs.unlessOf = append(rs.unlessOf, us)
	}
	for name := range f.Unless {
		if !isReason(name) {
			return nil, fmt.Errorf("bounce rules: unless: unknown reason %q", name)
		}
	}
	for name := range f.Reasons {
		if !isReason(name) {
			return nil, fmt.Errorf("bounce rules: unknown reason %q", name)
		}
	}
	for _, list := range [][]string{f.Order.First, f.Order.Phrases, f.Order.Fallback} {
		for _, r := range list {
			if !isReason(r) {
				return nil, fmt.Errorf("bounce rules: unknown reason %q in order", r)
			}
		}
	}
	for code, r := range f.Status {
		if !isReason(r) {
			return nil, fmt.Errorf("bounce rules: status %s: unknown reason %q", code, r)
		}
	}
	var err error
	for i := range rs.catRules {
		c := &rs.catRules[i]
		c.phrase = compilePhrase(c.Phrase)
		for _, r := range c.Reasons {
			if !isReason(r) {
				return nil, fmt.Errorf("bounce rules: category %s: unknown reason %q", c.Category, r)
			}
		}
	}
	for i := range rs.commands {
		c := &rs.commands[i]
		for _, p := range c.Phrases {
			c.phrases = append(c.phrases, compilePhrase(p))
		}
	}
	for i := range rs.last {
		l := &rs.last[i]
		if !isReason(l.Reason) {
			return nil, fmt.Errorf("bounce rules: lastresort: unknown reason %q", l.Reason)
		}
		for _, p := range l.Phrases {
			l.phrases = append(l.phrases, compilePhrase(p))
		}
	}
	for i := range rs.hints {
		h := &rs.hints[i]
		if h.Reason != "" && !isReason(h.Reason) {
			return nil, fmt.Errorf("bounce rules: hint %q: unknown reason %q", h.Phrase+h.Pattern, h.Reason)
		}
		if h.Phrase == "" && h.Pattern == "" && h.From == "" && h.Subject == "" {
			return nil, fmt.Errorf("bounce rules: hint without a condition")
		}
		if h.Scope != "" && h.Scope != "report" {
			return nil, fmt.Errorf("bounce rules: hint %q: unknown scope %q", h.Phrase+h.Pattern, h.Scope)
		}
		if h.Phrase != "" {
			h.phrase = compilePhrase(h.Phrase)
		}
		if h.Pattern != "" {
			if h.re, err = regexp.Compile(h.Pattern); err != nil {
				return nil, fmt.Errorf("bounce rules: hint pattern %q: %w", h.Pattern, err)
			}
		}
		if h.From != "" {
			if h.fromRe, err = regexp.Compile(strings.ToLower(h.From)); err != nil {
				return nil, fmt.Errorf("bounce rules: hint from %q: %w", h.From, err)
			}
		}
		if h.Subject != "" {
			if h.subjRe, err = regexp.Compile(strings.ToLower(h.Subject)); err != nil {
				return nil, fmt.Errorf("bounce rules: hint subject %q: %w", h.Subject, err)
			}
		}
	}
	for i := range rs.providers {
		p := &rs.providers[i]
		for j := range p.Rules {
			r := &p.Rules[j]
			if !isReason(r.Reason) {
				return nil, fmt.Errorf("bounce rules: provider %s: unknown reason %q", p.Name, r.Reason)
			}
			if r.Phrase != "" {
				r.phrase = compilePhrase(r.Phrase)
			}
		}
	}
	for _, r := range extra {
		if !isReason(r.Reason) {
			return nil, fmt.Errorf("bounce rule %q: unknown reason %q", r.Pattern, r.Reason)
		}
		cr := compiledRule{Rule: r}
		if r.Pattern != "" {
			if cr.re, err = regexp.Compile("(?i)" + r.Pattern); err != nil {
				return nil, fmt.Errorf("bounce rule %q: %w", r.Pattern, err)
			}
		}
		rs.extra = append(rs.extra, cr)
	}
	return rs, nil
}

// statusReason returns the reason an enhanced status code points to.
func (rs *ruleSet) statusReason(code string) string {
	if code == "" {
		return ""
	}
	if r, ok := rs.status[code]; ok {
		return r
	}
	if i := strings.IndexByte(code, '.'); i > 0 {
		return rs.status[code[i+1:]]
	}
	return ""
}

// lowerFold is foldSpace(strings.ToLower(s)), in one pass for ASCII.
func lowerFold(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return foldSpace(strings.ToLower(s))
		}
	}
	return fold(s, true)
}

// foldSpace replaces every run of blanks (space, tab, newline) by one
// space and trims the ends.
func foldSpace(s string) string { return fold(s, false) }

// fold is foldSpace, lower-casing ASCII letters too when lower is set.
func fold(s string, lower bool) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if lower && c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}
