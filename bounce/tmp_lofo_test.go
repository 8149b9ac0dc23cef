package bounce

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestTmpLOFOMisses(t *testing.T) {
	samples := loadSamples(t)
	var base ruleFile
	yaml.Unmarshal(defaultRulesYAML, &base)
	rules := wordings(&base)
	families := map[string][]sample{}
	usedBy := make([]map[string]bool, len(rules))
	for _, s := range samples {
		fam := family(s.file)
		families[fam] = append(families[fam], s)
		for i, w := range rules {
			if w.matches(s.text) {
				if usedBy[i] == nil {
					usedBy[i] = map[string]bool{}
				}
				usedBy[i][fam] = true
			}
		}
	}
	for fam, ss := range families {
		var f ruleFile
		yaml.Unmarshal(defaultRulesYAML, &f)
		for i, w := range wordings(&f) {
			if len(usedBy[i]) == 1 && usedBy[i][fam] {
				w.remove(&f)
			}
		}
		data, _ := yaml.Marshal(&f)
		rs, _ := loadRules(data, nil)
		c := &Classifier{rs: rs}
		for _, s := range ss {
			res, _ := c.ParseMessage(s.raw)
			got := map[string]Classification{}
			for _, r := range res {
				got[strings.ToLower(r.Recipient)] = r
			}
			for _, l := range s.labels {
				r := got[strings.ToLower(l.Recipient)]
				if r.Reason != l.Reason {
					d := r.Diagnostic
					if len(d) > 150 {
						d = d[:150]
					}
					t.Logf("%s: got %s want %s (status %s/%s) %q", s.file, r.Reason, l.Reason, r.Status, l.Status, d)
				}
			}
		}
	}
}
