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

// The README's shell commands run as written beside `drover serve` on the
// embedded default (with an unreachable resolver), in a fresh directory: `go run ./cmd/drover` is the
// built binary, the example queue id is the id swaks got. Skipped: the
// commands that start a server, run the whole suite or the benchmark,
// follow a log, signal the server, or name files under /etc/drover.
func TestREADMECommands(t *testing.T) {
	for _, tool := range []string{"swaks", "curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing (.ci/run installs it)", tool)
			}
			t.Skipf("%s is missing", tool)
		}
	}
	t.Setenv("DROVER_ADMIN_TOKEN", "")
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir, bin := t.TempDir(), t.TempDir()
	if err := os.Symlink(droverBin, filepath.Join(bin, "drover")); err != nil {
		t.Fatal(err)
	}
	bounceFile, _ := os.ReadFile("../../bounce/testdata/corpus/emails/lhost-postfix-01.eml")
	os.WriteFile(filepath.Join(dir, "bounce.eml"), bounceFile, 0o600)

	// The embedded default but for an unreachable resolver, so that the
	// example message stays queued for the commands that show it.
	os.WriteFile(filepath.Join(dir, "drover.yaml"), []byte("delivery:\n  resolver: 127.0.0.1:9\n"), 0o600)
	srv, _ := serveDefault(t, dir, "-c", "drover.yaml")
	defer func() {
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
	}()

	skip := regexp.MustCompile(`drover serve|^make |tail -f|kill -HUP|^sudo |\[ID\.\.\.\]|/etc/drover`)
	blocks := regexp.MustCompile("(?s)```(?:sh|bash)\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	id := ""
	ran := 0
	for _, b := range blocks {
		text := strings.ReplaceAll(b[1], "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(strings.ReplaceAll(line, "go run ./cmd/drover", "drover"))
			if line == "" || strings.HasPrefix(line, "#") || skip.MatchString(line) {
				continue
			}
			if id != "" {
				line = strings.ReplaceAll(strings.ReplaceAll(line, "0C0R3J1K2Q8G", id), "0c0r3j1k2q8g", strings.ToLower(id))
			}
			cmd := exec.Command("bash", "-o", "pipefail", "-c", line)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
			got, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("README command %q: %v\n%s", line, err, got)
				continue
			}
			ran++
			if m := queuedAs.FindSubmatch(got); m != nil && id == "" {
				id = string(m[1])
			}
		}
	}
	if id == "" || ran < 15 {
		t.Errorf("ran %d README commands, queue id %q: the README's commands were not found", ran, id)
	}
}
