package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover/policy"
)

// drover links rotate-key puts a new sealing key at the head of the data
// directory's ring; a link sealed before still opens, and one sealed
// after names the new key. Without a ring it says where it looked.
func TestLinksRotateKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "drover.yaml")
	os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"), 0o600)
	ring := filepath.Join(dir, "data", "link-keys")
	if out, err := (&drover{}).cli("links", "rotate-key", "-c", cfg); err == nil || !strings.Contains(out, ring) {
		t.Fatalf("without a ring: %v\n%s", err, out)
	}
	os.MkdirAll(filepath.Dir(ring), 0o700)
	keys, err := policy.LoadKeys(ring, true, writeKeys)
	if err != nil {
		t.Fatal(err)
	}
	old := (&policy.Tokens{Keys: keys}).Seal(policy.Recipient{Sender: "shop", Address: "a@example.com"}, time.Now())
	out, err := (&drover{}).cli("links", "rotate-key", "-c", cfg)
	if err != nil || !strings.Contains(out, "new sealing key 2; 2 key(s)") {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}
	keys, err = policy.LoadKeys(ring, false, nil)
	if err != nil || len(keys) != 2 || keys[0].ID != 2 {
		t.Fatalf("ring after rotation: %v %v", keys, err)
	}
	if r, err := (&policy.Tokens{Keys: keys}).Open(old, time.Now()); err != nil || r.Address != "a@example.com" {
		t.Errorf("an older link after rotation: %+v %v", r, err)
	}
	if st, _ := os.Stat(ring); st.Mode().Perm() != 0o600 {
		t.Errorf("ring mode %v", st.Mode())
	}
}
