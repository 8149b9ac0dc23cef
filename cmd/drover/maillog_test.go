package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"drover/configs"
	"drover/queue"
)

// Every event written before Close is in the file, one JSON line each;
// writes after Close are ignored; concurrent writers are safe.
func TestMailLog(t *testing.T) {
	dir := t.TempDir()
	cfg := &configs.Config{DataDir: dir}
	l, err := openMailLog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				l.Write(queue.Event{Kind: queue.EventDelivered, MsgID: "m", Attempt: w*1000 + i})
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Write(queue.Event{Kind: queue.EventDelivered}) // after Close: ignored, no panic
	f, err := os.Open(filepath.Join(dir, "mail.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev["event"] != "delivered" {
			t.Fatalf("line %d: %q %v", n, sc.Text(), err)
		}
	}
	if n+int(l.dropped.Load()) != 2000 || n == 0 {
		t.Errorf("%d lines, %d dropped, want 2000 in all", n, l.dropped.Load())
	}

	cfg.MailLog = "off"
	if l, err := openMailLog(cfg); err != nil || l != nil {
		t.Errorf("off: %v %v", l, err)
	}
}
