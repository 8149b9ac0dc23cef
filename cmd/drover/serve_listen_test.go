package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover/configs"
)

// When the HTTP listener cannot start, serve gives up and leaves neither
// SMTP listener open behind it.
func TestServeHTTPListenFailureClosesListeners(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	sub, inbound := freePort(t), freePort(t)
	path := filepath.Join(dir, "drover.yaml")
	yaml := fmt.Sprintf("hostname: drover.test\ndata_dir: %s\nlog_level: error\nmail_log: \"off\"\nlisteners:\n  - {address: %q, mode: plain, loopback_sender: default}\nbounces:\n  inbound_address: %q\nhttp:\n  address: %q\n",
		filepath.Join(dir, "data"), sub, inbound, taken.Addr().String())
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	err = serve(context.Background(), path, cfg)
	if err == nil || !strings.Contains(err.Error(), "http listen") {
		t.Fatalf("serve: %v, want an http listen error", err)
	}
	for name, addr := range map[string]string{"submission": sub, "inbound": inbound} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s listener %s still open: %v", name, addr, err)
			continue
		}
		ln.Close()
	}
}
