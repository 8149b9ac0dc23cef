package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"drover/configs"
)

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// The first start makes a 32-byte key of mode 0600 and leaves no
// temporary file; later starts read the same key.
func TestLoadVERPKeyCreatesOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := &configs.Config{DataDir: dir}
	first, err := loadVERPKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "verp.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 || len(first.Key) != 32 {
		t.Errorf("key file mode %v size %d, key %d bytes; want 0600, 32, 32", fi.Mode().Perm(), fi.Size(), len(first.Key))
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("data dir holds %q, want only verp.key", names)
	}
	again, err := loadVERPKey(cfg)
	if err != nil || !bytes.Equal(again.Key, first.Key) {
		t.Errorf("second start: key changed (%v)", err)
	}

	// A configured key file that is missing is an error, not a new key.
	cfg.Bounces.VERPKeyFile = filepath.Join(dir, "missing.key")
	if _, err := loadVERPKey(cfg); err == nil {
		t.Error("missing configured key file accepted")
	}
	if _, err := os.Stat(cfg.Bounces.VERPKeyFile); err == nil {
		t.Error("configured key file was created")
	}
}

// writeFileAtomic replaces a file whole, with the mode asked for; when it
// fails, the old file and the directory are as they were.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old content, longer than the new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(got) != "new" || fi.Mode().Perm() != 0o600 {
		t.Errorf("got %q mode %v, want \"new\" 0600", got, fi.Mode().Perm())
	}

	// The rename fails (a directory is in the way): the temporary file
	// goes, the directory stays as it was.
	blocked := filepath.Join(dir, "blocked")
	if err := os.Mkdir(blocked, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blocked, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(blocked, []byte("key"), 0o600); err == nil {
		t.Error("rename over a non-empty directory succeeded")
	}
	if names := entries(t, dir); len(names) != 2 {
		t.Errorf("after a failed write the directory holds %q, want f and blocked", names)
	}

	if err := writeFileAtomic(filepath.Join(dir, "no", "such", "dir"), []byte("x"), 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
