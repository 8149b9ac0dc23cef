package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every YAML snippet of the README passes `drover config check` as
// written, once the DKIM key it names exists (made by the README's own
// `drover dkim keygen` command); only /etc/drover/ becomes a temporary
// directory.
func TestREADMEConfigSnippets(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	local := func(s string) string { return strings.ReplaceAll(s, "/etc/drover/", dir+"/") }
	keygen := regexp.MustCompile(`(?m)^drover (dkim keygen .*)$`).FindStringSubmatch(string(readme))
	if keygen == nil {
		t.Fatal("the README has no drover dkim keygen command")
	}
	if out, err := exec.Command(droverBin, strings.Fields(local(keygen[1]))...).CombinedOutput(); err != nil {
		t.Fatalf("drover %s: %v\n%s", keygen[1], err, out)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) == 0 {
		t.Fatal("no YAML snippets in the README")
	}
	for i, b := range blocks {
		file := filepath.Join(dir, "snippet.yaml")
		if err := os.WriteFile(file, []byte(local(b[1])), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(droverBin, "config", "check", file).CombinedOutput(); err != nil {
			t.Errorf("README YAML snippet %d:\n%s\ndrover config check: %v\n%s", i+1, b[1], err, out)
		}
	}
}
