package bounce

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// label is one line of testdata/corpus/labels.jsonl: what Sisimai's own
// test suites expect for one recipient of one sample (see
// testdata/corpus/README.md; the samples are BSD-2 licensed, see
// LICENSE.set-of-emails).
type label struct {
	File         string `json:"file"`
	Recipient    string `json:"recipient"`
	Status       string `json:"status"`
	Reason       string `json:"reason"`
	HardBounce   bool   `json:"hardbounce"`
	FeedbackType string `json:"feedbacktype"`
}

func readLabels(t testing.TB) []label {
	f, err := os.Open("testdata/corpus/labels.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []label
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l label
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// knownDifferences are the samples where this classifier and Sisimai
// disagree, with why. The test fails when one of them starts to agree,
// so that the list stays true.
var knownDifferences = map[string]string{
	"lhost-x3-05.eml": "Sisimai reads no diagnostic (undefined); we read the report's boilerplate (onhold)",
	"rfc3464-43.eml":  "4.3.0 'recipient error, try again later': Sisimai says onhold, the status table says systemerror",
	"rfc3464-04.eml":  "a procmail pipe that exits 75: go-sisimai says systemerror, p5-sisimai and we say mailererror",
}

// TestCorpus classifies every labelled sample and compares recipient,
// reason, hard/soft and feedback type with the label.
func TestCorpus(t *testing.T) {
	labels := readLabels(t)
	byFile := map[string][]label{}
	var files []string
	for _, l := range labels {
		if _, ok := byFile[l.File]; !ok {
			files = append(files, l.File)
		}
		byFile[l.File] = append(byFile[l.File], l)
	}
	ok, total := 0, 0
	for _, file := range files {
		t.Run(strings.TrimSuffix(file, ".eml"), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata/corpus/emails", file))
			if err != nil {
				t.Fatal(err)
			}
			res, err := ParseMessage(raw)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]Classification{}
			for _, c := range res {
				got[strings.ToLower(c.Recipient)] = c
			}
			fileOK := true
			for _, l := range byFile[file] {
				total++
				c, found := got[strings.ToLower(l.Recipient)]
				if !found {
					t.Errorf("recipient %s not found (got %d others)", l.Recipient, len(res))
					fileOK = false
					continue
				}
				wantClass := "soft"
				if l.HardBounce {
					wantClass = "hard"
				}
				gotClass := c.Class
				if gotClass == "" {
					gotClass = "soft" // delivered, feedback and vacation are not hard
				}
				if c.Reason != l.Reason || gotClass != wantClass || c.FeedbackType != l.FeedbackType {
					fileOK = false
					if _, known := knownDifferences[file]; !known {
						t.Errorf("%s: got %s/%s/%s, want %s/%s/%s (diagnostic %q)", l.Recipient,
							c.Reason, gotClass, c.FeedbackType, l.Reason, wantClass, l.FeedbackType, c.Diagnostic)
					}
					continue
				}
				ok++
			}
			if why, known := knownDifferences[file]; known && fileOK {
				t.Errorf("known difference now agrees with Sisimai; remove it from knownDifferences (%s)", why)
			}
		})
	}
	if acc := float64(ok) / float64(total); acc < 0.95 {
		t.Errorf("reason and class agree on %d of %d recipients (%.3f), want at least 0.95", ok, total, acc)
	}
}

// TestCRLFAndMbox: the same sample with CRLF, CR or CR CR LF line ends
// and an mbox "From " line gives the same result.
func TestCRLFAndMbox(t *testing.T) {
	raw, err := os.ReadFile("testdata/corpus/emails/lhost-postfix-02.eml")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ParseMessage(raw)
	for name, nl := range map[string]string{"CRLF": "\r\n", "CR": "\r", "CR CR LF": "\r\r\n"} {
		variant := []byte("From MAILER-DAEMON Thu Apr 29 23:34:45 2014" + nl + strings.ReplaceAll(string(raw), "\n", nl))
		got, _ := ParseMessage(variant)
		if len(got) != len(want) || len(got) != 2 {
			t.Fatalf("%s: got %d recipients, want %d", name, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s form differs:\n%+v\n%+v", name, got[i], want[i])
			}
		}
	}
}

func TestNotABounce(t *testing.T) {
	res, err := ParseMessage([]byte("From: alice@example.org\nTo: bob@example.org\nSubject: lunch?\n\nAt noon?\n"))
	if err != nil || len(res) != 0 {
		t.Errorf("plain mail: %v %v", res, err)
	}
	if _, err := ParseMessage([]byte("no header here at all")); err != ErrNotMessage {
		t.Errorf("garbage: err %v", err)
	}
	if _, err := ParseMessage(nil); err != ErrNotMessage {
		t.Errorf("empty: err %v", err)
	}
}

func TestJSONLine(t *testing.T) {
	c := NewClassifier(nil).Classify(Reply{Code: 550, Enhanced: "5.1.1", Text: "<a@example.org>: User unknown"})
	c.Recipient = "a@example.org"
	line := string(c.JSON())
	for _, want := range []string{`"recipient":"a@example.org"`, `"status":"5.1.1"`, `"reply_code":"550"`,
		`"reason":"userunknown"`, `"class":"hard"`, `"hardbounce":true`, `"category":"bad-mailbox"`, `<a@example.org>`} {
		if !strings.Contains(line, want) {
			t.Errorf("%s lacks %s", line, want)
		}
	}
	if strings.Contains(line, "\n") {
		t.Error("JSON has a line end")
	}
}
