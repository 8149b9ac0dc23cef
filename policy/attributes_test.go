package policy

import (
	"errors"
	"strings"
	"testing"
)

// An attribute is kept per sender and address, refused when its name is
// unknown or its value too long or holds a control character, and part
// of what is held about the address.
func TestAttributes(t *testing.T) {
	p, _ := newPolicy(t, nil)
	if a, err := p.Attributes("shop", "ann@example.com"); err != nil || len(a) != 0 {
		t.Fatalf("no attributes yet: %v %v", a, err)
	}
	if err := p.SetAttribute("shop", "Ann@Example.com", "name", "Ann <b>Lee</b>"); err != nil {
		t.Fatal(err)
	}
	if a, err := p.Attributes("shop", "ANN@example.com"); err != nil || a["name"] != "Ann <b>Lee</b>" || len(a) != 1 {
		t.Errorf("attributes %v %v", a, err)
	}
	if a, _ := p.Attributes("bank", "ann@example.com"); len(a) != 0 {
		t.Errorf("another sender sees %v", a)
	}
	for _, c := range []struct{ name, value string }{
		{"age", "3"},
		{"name", "Ann\r\nBcc: x@example.com"},
		{"name", "Ann\x00"},
		{"name", "Ann\u2028Lee"},
		{"name", strings.Repeat("é", MaxAttribute+1)},
		{"name", "\xff"},
	} {
		var invalid *InvalidAttributeError
		if err := p.SetAttribute("shop", "ann@example.com", c.name, c.value); !errors.As(err, &invalid) {
			t.Errorf("%s=%q: %v, want refused", c.name, c.value, err)
		}
	}
	if err := p.SetAttribute("shop", "ann@example.com", "name", strings.Repeat("é", MaxAttribute)); err != nil {
		t.Errorf("%d characters refused: %v", MaxAttribute, err)
	}
	if err := p.SetAttribute("", "ann@example.com", "name", "x"); err == nil {
		t.Error("an attribute without sender was taken")
	}
	h, err := p.Held("ann@example.com", []string{"shop", "bank"})
	if err != nil || len(h.Attributes) != 1 || h.Attributes[0].Sender != "shop" || h.Attributes[0].Attributes["name"] != strings.Repeat("é", MaxAttribute) {
		t.Errorf("held %+v %v", h, err)
	}
	if h, err := p.HeldBy("ann@example.com", "bank"); err != nil || len(h.Attributes) != 0 {
		t.Errorf("held by bank %+v %v", h, err)
	}
	if h, err := p.HeldBy("ann@example.com", "shop"); err != nil || len(h.Attributes) != 1 {
		t.Errorf("held by shop %+v %v", h, err)
	}
	if err := p.SetAttribute("shop", "ann@example.com", "name", ""); err != nil {
		t.Fatal(err)
	}
	if a, _ := p.Attributes("shop", "ann@example.com"); len(a) != 0 {
		t.Errorf("removed attribute still there: %v", a)
	}
	if n := countKeys(t, p, prefixAttributes); n != 0 {
		t.Errorf("%d attribute keys left", n)
	}
}

// HeldBy is what is held about an address that concerns one sender: no
// other sender's consent, entries, engagement or attributes.
func TestHeldBy(t *testing.T) {
	p, _ := newPolicy(t, nil)
	p.Observe(Outcome{Kind: KindDelivered, Sender: "shop", Address: "ann@example.com", Stream: "marketing"})
	p.Observe(Outcome{Kind: KindDelivered, Sender: "bank", Address: "ann@example.com", Stream: "marketing"})
	p.Sync()
	p.Unsubscribe(Recipient{Sender: "shop", List: "news", Address: "ann@example.com"}, "one-click")
	p.Unsubscribe(Recipient{Sender: "bank", Address: "ann@example.com"}, "one-click")
	for _, s := range []string{"shop", "bank"} {
		if _, _, err := p.RecordConsent(ConsentInput{Sender: s, List: "offers", Address: "ann@example.com", Time: t0, Source: "form", Text: "Yes."}); err != nil {
			t.Fatal(err)
		}
		if err := p.SetAttribute(s, "ann@example.com", "name", "Ann of "+s); err != nil {
			t.Fatal(err)
		}
	}
	h, err := p.HeldBy("Ann@example.com", "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Consent) != 1 || h.Consent[0].Sender != "shop" || len(h.Suppressions) != 1 || h.Suppressions[0].Sender != "shop" ||
		len(h.Engagement) != 1 || h.Engagement[0].Sender != "shop" || len(h.Attributes) != 1 || h.Attributes[0].Attributes["name"] != "Ann of shop" {
		t.Errorf("held by shop: %+v", h)
	}
	if _, err := p.HeldBy("ann@example.com", Any); err == nil {
		t.Error("HeldBy every sender was taken")
	}
}
