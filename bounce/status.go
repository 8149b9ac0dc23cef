package bounce

import "strings"

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// findStatus returns the RFC 3463 enhanced status code of s ("5.1.1",
// "4.7.650"): the first one that follows a reply code ("550 5.1.1",
// "550-'5.7.1"), else the first one, ignoring numbers that are part of
// IP addresses or version strings.
func findStatus(s string) string {
	first := ""
	for i := 0; i < len(s); {
		code, at := nextStatus(s, i)
		if code == "" {
			break
		}
		if first == "" {
			first = code
		}
		j := at
		for j > 0 && (s[j-1] == ' ' || s[j-1] == '-' || s[j-1] == '\'' || s[j-1] == '"' || s[j-1] == '#' || s[j-1] == '(') {
			j--
		}
		if j >= 3 && isDigit(s[j-1]) && isDigit(s[j-2]) && (s[j-3] == '4' || s[j-3] == '5' || s[j-3] == '2') && (j == 3 || !isDigit(s[j-4]) && s[j-4] != '.') {
			return code
		}
		i = at + len(code)
	}
	return first
}

// nextStatus returns the first enhanced status code in s at or after
// from, and its position.
func nextStatus(s string, from int) (string, int) {
	for i := from; i+4 < len(s); i++ {
		c := s[i]
		if c != '2' && c != '4' && c != '5' {
			continue
		}
		if i > 0 && (isDigit(s[i-1]) || s[i-1] == '.') {
			continue
		}
		if s[i+1] != '.' {
			continue
		}
		j := i + 2
		k := j
		for k < len(s) && isDigit(s[k]) && k-j < 3 {
			k++
		}
		if k == j || k >= len(s) || s[k] != '.' || k-j > 1 && s[j] == '0' {
			continue
		}
		subject := s[j:k]
		if len(subject) > 1 || subject[0] > '7' {
			continue
		}
		m := k + 1
		n := m
		for n < len(s) && isDigit(s[n]) && n-m < 3 {
			n++
		}
		if n == m {
			continue
		}
		if n < len(s) && (isDigit(s[n]) || s[n] == '.' && n+1 < len(s) && isDigit(s[n+1])) {
			continue
		}
		return s[i:n], i
	}
	return "", -1
}

// findReplyCode returns the first SMTP reply code (2xx, 4xx, 5xx) in s
// that stands as a word: "550 ...", "550-...", "said: 550", "smtp; 550".
func findReplyCode(s string) string {
	for i := 0; i+2 < len(s); i++ {
		c := s[i]
		if c != '2' && c != '4' && c != '5' {
			continue
		}
		if i > 0 {
			p := s[i-1]
			if p != ' ' && p != '\t' && p != '\n' && p != ':' && p != ';' && p != '(' && p != '\'' && p != '"' && p != '[' && p != '<' {
				continue
			}
		}
		if !isDigit(s[i+1]) || !isDigit(s[i+2]) || s[i+1] > '5' {
			continue
		}
		if i+3 < len(s) {
			n := s[i+3]
			if n != ' ' && n != '-' && n != '\n' && n != '\t' && n != ':' && n != ')' && n != '\'' && n != ']' && n != ',' {
				continue
			}
			// "550.5.1.1"-like or a decimal number are not reply codes.
			if n == ':' && i+4 < len(s) && isDigit(s[i+4]) {
				continue
			}
		}
		return s[i : i+3]
	}
	return ""
}

// pickStatus chooses between the status a report states and the one in
// its diagnostic text. The remote server's own code is the more precise
// (reports often state a generic 5.0.0 or 4.4.7), so it wins unless it
// is itself X.0.0.
func pickStatus(stated, diag string) string {
	stated = strings.TrimSpace(stated)
	if i := strings.IndexAny(stated, " \t("); i > 0 {
		stated = stated[:i]
	}
	if stated != "" && findStatus(stated) != stated {
		stated = findStatus(stated)
	}
	found := findStatus(diag)
	switch {
	case stated == "":
		return found
	case found == "":
		return stated
	case strings.HasSuffix(found, ".0.0") && !strings.HasSuffix(stated, ".0.0"):
		return stated
	}
	return found
}

// findCommand returns the SMTP command the report says failed, or "";
// low is the report text prepared by matchText.
func (rs *ruleSet) findCommand(low string) string {
	x := newTextIndex(low)
	for _, c := range rs.commands {
		for _, p := range c.phrases {
			if x.contains(p) {
				return c.Command
			}
		}
	}
	return ""
}

// applyHints sets f.preset and f.command from the first format hints
// that match the diagnostic text (f.lower) or the whole report
// (reportLower returns it prepared by matchText) and the bounce's From
// and Subject.
func (rs *ruleSet) applyHints(f *facts, from, subject string, reportLower func() string) {
	from, subject = strings.ToLower(from), strings.ToLower(subject)
	lower := f.indexed()
	var report *textIndex
	for i := range rs.hints {
		h := &rs.hints[i]
		if h.fromRe != nil && !h.fromRe.MatchString(from) {
			continue
		}
		if h.subjRe != nil && !h.subjRe.MatchString(subject) {
			continue
		}
		low := lower
		if h.Scope == "report" {
			if report == nil {
				report = newTextIndex(reportLower())
			}
			low = report
		}
		if h.phrase.frags != nil && !low.contains(h.phrase) {
			continue
		}
		if h.re != nil && !h.re.MatchString(low.text) {
			continue
		}
		if h.Command != "" && f.command == "" {
			f.command = h.Command
		}
		if h.Reason != "" && f.preset == "" {
			f.preset = h.Reason
		}
	}
}
