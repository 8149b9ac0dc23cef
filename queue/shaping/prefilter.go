package shaping

import (
	"bytes"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// Go's regexp has no DFA: a case-insensitive pattern without a literal
// prefix runs its NFA over every byte of the text, some 10-60µs for a
// 300-byte reply, and Match tries a dozen of them on every temporary
// failure. So New derives from each pattern a set of literals one of which
// every match must contain, and Match runs the regexp only when the
// lower-cased text contains one. A pattern it cannot derive such a set
// from (".*", "[a-z]+", a non-ASCII literal) is always run.

// requiredLiterals returns lower-case ASCII strings such that every match
// of pattern (compiled case-insensitively) contains at least one of them,
// or nil when no such set is known; and whether the pattern is just those
// literals (a literal, or an alternation of literals, all case-insensitive),
// so that containing one is the same as matching.
func requiredLiterals(pattern string) ([][]byte, bool) {
	re, err := syntax.Parse("(?i)"+pattern, syntax.Perl)
	if err != nil {
		return nil, false
	}
	re = re.Simplify()
	lits := required(re)
	if len(lits) == 0 {
		return nil, false
	}
	out := make([][]byte, 0, len(lits))
	for _, l := range lits {
		out = append(out, []byte(l))
	}
	return out, onlyFoldedLiterals(re)
}

// onlyFoldedLiterals reports whether re is a case-insensitive literal or
// an alternation of them (captures allowed): then required(re) is exactly
// the set of strings it matches.
func onlyFoldedLiterals(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		return re.Flags&syntax.FoldCase != 0
	case syntax.OpCapture:
		return onlyFoldedLiterals(re.Sub[0])
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !onlyFoldedLiterals(sub) {
				return false
			}
		}
		return true
	}
	return false
}

func required(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		s := string(re.Rune)
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return nil
			}
		}
		return []string{strings.ToLower(s)}
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
		return nil
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			s := required(sub)
			if s == nil {
				return nil
			}
			out = append(out, s...)
		}
		return out
	case syntax.OpConcat:
		// Any one child's set will do; take the one whose shortest
		// literal is longest (the most selective).
		var best []string
		bestLen := 0
		for _, sub := range re.Sub {
			s := required(sub)
			if s == nil {
				continue
			}
			if m := minLen(s); m > bestLen {
				best, bestLen = s, m
			}
		}
		return best
	}
	return nil
}

func minLen(s []string) int {
	m := -1
	for _, x := range s {
		if m < 0 || len(x) < m {
			m = len(x)
		}
	}
	return m
}

// lowerASCII writes the ASCII lower-case form of s into buf (grown if
// too small) and reports false if s is not all ASCII: case-insensitive
// matching folds some non-ASCII runes onto ASCII letters (K, ſ), so the
// prefilter does not apply.
func lowerASCII(buf []byte, s string) ([]byte, bool) {
	buf = buf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return buf, false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return buf, true
}

// mayMatch reports whether lower (the lower-cased text) contains one of
// the required literals.
func mayMatch(lits [][]byte, lower []byte) bool {
	for _, l := range lits {
		if bytes.Contains(lower, l) {
			return true
		}
	}
	return false
}
