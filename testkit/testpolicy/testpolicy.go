// Package testpolicy opens a policy.Policy for the tests of the packages
// above policy (testkit itself is below it: policy's own tests use it).
package testpolicy

import (
	"testing"

	"github.com/cockroachdb/pebble"

	"drover/policy"
)

// New is a policy.Policy over a Pebble store of its own in a
// temporary directory, closed with the test; cfg.Store is set.
func New(t testing.TB, cfg policy.Config) *policy.Policy {
	t.Helper()
	db, err := pebble.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := policy.NewPebbleStore(db)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = store
	p, err := policy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
