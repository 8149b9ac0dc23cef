package listcheck

import "strings"

// mailboxDomains are the big mailbox providers' domains, most used first:
// the domains a typo is checked against, and never typos themselves.
// Besides the domains suggestions go to, it holds the providers'
// regional domains and the real domains one edit away from them
// (ymail.com, mail.com, email.com, gmx.at, ...), so that none of those
// is taken for a typo.
var mailboxDomains = []string{
	// Google, Yahoo, Microsoft, Apple, AOL
	"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com",
	"googlemail.com", "live.com", "msn.com", "me.com", "mac.com", "ymail.com", "rocketmail.com",
	"yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.es", "yahoo.it", "yahoo.ca", "yahoo.co.in",
	"yahoo.co.jp", "yahoo.com.br", "yahoo.com.au", "yahoo.in",
	"hotmail.co.uk", "hotmail.fr", "hotmail.de", "hotmail.it", "hotmail.es", "hotmail.nl", "hotmail.be",
	"outlook.fr", "outlook.de", "outlook.es", "outlook.it", "outlook.co.uk",
	"live.co.uk", "live.fr", "live.de", "live.nl", "live.it", "live.be", "live.ca",
	"aim.com", "aol.de", "aol.fr", "aol.co.uk",
	// Europe
	"gmx.de", "gmx.net", "gmx.at", "gmx.ch", "gmx.com", "gmx.fr", "web.de", "t-online.de", "freenet.de",
	"orange.fr", "wanadoo.fr", "free.fr", "sfr.fr", "laposte.net", "neuf.fr",
	"libero.it", "virgilio.it", "tiscali.it", "alice.it", "tin.it",
	"btinternet.com", "sky.com", "virginmedia.com", "ntlworld.com", "talktalk.net",
	"ziggo.nl", "kpnmail.nl", "planet.nl", "telenet.be", "skynet.be", "bluewin.ch",
	"seznam.cz", "wp.pl", "o2.pl", "onet.pl", "interia.pl",
	// Russia, Asia
	"yandex.ru", "yandex.com", "ya.ru", "mail.ru", "bk.ru", "inbox.ru", "list.ru", "rambler.ru",
	"qq.com", "163.com", "126.com", "sina.com", "yeah.net", "naver.com", "daum.net", "hanmail.net",
	"rediffmail.com",
	// North America, Oceania, South America
	"comcast.net", "verizon.net", "att.net", "sbcglobal.net", "cox.net", "charter.net", "earthlink.net",
	"bellsouth.net", "shaw.ca", "rogers.com", "sympatico.ca", "bigpond.com", "optusnet.com.au",
	"uol.com.br", "bol.com.br", "terra.com.br",
	// independent providers
	"protonmail.com", "protonmail.ch", "proton.me", "pm.me", "tutanota.com", "zoho.com", "mail.com",
	"email.com", "fastmail.com", "hey.com", "inbox.com",
}

var mailboxRunes = func() [][]rune {
	rs := make([][]rune, len(mailboxDomains))
	for i, d := range mailboxDomains {
		rs[i] = []rune(d)
	}
	return rs
}()

var mailboxSet = func() map[string]bool {
	m := make(map[string]bool, len(mailboxDomains))
	for _, d := range mailboxDomains {
		m[d] = true
	}
	return m
}()

// maxTypoDistance is the largest edit distance a typo may be from its
// domain.
const maxTypoDistance = 2

// Suggest returns the big mailbox domain that domain (lower case, as
// mta/address gives it) looks like a typo of, such as gmail.com for
// gmial.com. A domain of mailboxDomains is never a typo. Otherwise the
// domain is a typo of the nearest domain of mailboxDomains (the first
// listed among equals) when its restricted Damerau-Levenshtein distance
// to it (insertions, deletions, substitutions and transpositions of
// adjacent letters) is 1, or 2 when the domain's first label has six
// letters or more (hotmail, outlook, ...). Where that first label has
// three letters or fewer (aol, qq, me, gmx, 163, ...), many real domains
// are one edit away from it (mi.com, 263.com, max.com), so the edit must
// lie after the first label (aol.co, qq.cm) or double one of its letters
// (aoll.com).
func Suggest(domain string) (string, bool) {
	if mailboxSet[domain] || domain == "" {
		return "", false
	}
	rd := []rune(domain)
	var scratch [3][]int
	best, bestDist := "", maxTypoDistance+1
	for i, c := range mailboxDomains {
		if d := len(rd) - len(mailboxRunes[i]); d > maxTypoDistance || d < -maxTypoDistance {
			continue
		}
		label, _, _ := strings.Cut(c, ".")
		limit := 1
		if len(label) >= 6 {
			limit = 2
		}
		d := osa(rd, mailboxRunes[i], limit, &scratch)
		if d > limit || d >= bestDist {
			continue
		}
		if len(label) <= 3 && !shortLabelTypo(domain, c, label) {
			continue
		}
		best, bestDist = c, d
	}
	return best, best != ""
}

// shortLabelTypo reports whether domain, one edit from c whose first
// label is short, keeps that label (the edit is in the rest) or doubles
// one of its letters.
func shortLabelTypo(domain, c, label string) bool {
	dl, _, _ := strings.Cut(domain, ".")
	if dl == label {
		return true
	}
	rest := c[len(label):]
	if !strings.HasSuffix(domain, rest) || len(dl) != len(label)+1 {
		return false
	}
	for i := 1; i < len(dl); i++ {
		if dl[i] == dl[i-1] && dl[:i]+dl[i+1:] == label {
			return true
		}
	}
	return false
}

// distance is the restricted Damerau-Levenshtein (optimal string
// alignment) distance between a and b, in runes, or limit+1 when it is
// more than limit.
func distance(a, b string, limit int) int {
	var scratch [3][]int
	return osa([]rune(a), []rune(b), limit, &scratch)
}

// osa is distance on runes. Only the band of cells within limit of the
// diagonal is computed, in three rows of the matrix kept in scratch.
func osa(ra, rb []rune, limit int, scratch *[3][]int) int {
	n, m := len(ra), len(rb)
	if n-m > limit || m-n > limit {
		return limit + 1
	}
	inf := limit + 1
	for i := range scratch {
		if cap(scratch[i]) < m+1 {
			scratch[i] = make([]int, m+1, max(m+1, 64))
		}
		scratch[i] = scratch[i][:m+1]
	}
	// Rows i-2, i-1 and i.
	prev2, prev, cur := scratch[0], scratch[1], scratch[2]
	for j := range prev {
		prev[j] = min(j, inf)
		prev2[j] = inf
	}
	for i := 1; i <= n; i++ {
		for j := range cur {
			cur[j] = inf
		}
		if i <= limit {
			cur[0] = i
		}
		rowMin := cur[0]
		lo, hi := max(1, i-limit), min(m, i+limit)
		for j := lo; j <= hi; j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = min(v, inf)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= inf {
			return inf
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[m]
}
