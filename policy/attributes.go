package policy

import (
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Attributes are what a recipient tells a sender about itself, kept per
// sender and address (pa): today its name, which it corrects on the
// manage-subscription page. They are part of what is held about an
// address (Held) and of its GDPR export.

// AttributeNames are the attributes an address may have.
var AttributeNames = []string{"name"}

// MaxAttribute is the longest attribute value, in characters.
const MaxAttribute = 100

// InvalidAttributeError is an attribute refused for its name or value:
// the caller's to correct.
type InvalidAttributeError struct{ Msg string }

func (e *InvalidAttributeError) Error() string { return e.Msg }

// CheckAttribute reports whether value may be stored as the attribute
// name: a name of AttributeNames, a value of valid UTF-8, at most
// MaxAttribute characters, without control characters (CR, LF, tab, ...).
func CheckAttribute(name, value string) error {
	if !slices.Contains(AttributeNames, name) {
		return &InvalidAttributeError{Msg: fmt.Sprintf("attribute %q: not one of %v", name, AttributeNames)}
	}
	if !utf8.ValidString(value) {
		return &InvalidAttributeError{Msg: fmt.Sprintf("attribute %s: not valid UTF-8", name)}
	}
	if n := utf8.RuneCountInString(value); n > MaxAttribute {
		return &InvalidAttributeError{Msg: fmt.Sprintf("attribute %s: %d characters, at most %d", name, n, MaxAttribute)}
	}
	for _, r := range value {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return &InvalidAttributeError{Msg: fmt.Sprintf("attribute %s: control character %U", name, r)}
		}
	}
	return nil
}

// Attributes returns the attributes of addr with sender, by name (an
// empty map when none).
func (p *Policy) Attributes(sender, addr string) (map[string]string, error) {
	a, err := Canonical(addr)
	if err != nil {
		return nil, &InvalidAttributeError{Msg: err.Error()}
	}
	if sender == "" {
		return nil, &InvalidAttributeError{Msg: "an attribute belongs to a sender: name it"}
	}
	return p.cfg.Store.Attributes(sender, a)
}

// SetAttribute sets the attribute name of addr with sender to value (""
// removes it), durably: it returns once the change is on disk.
func (p *Policy) SetAttribute(sender, addr, name, value string) error {
	a, err := Canonical(addr)
	if err != nil {
		return &InvalidAttributeError{Msg: err.Error()}
	}
	if sender == "" {
		return &InvalidAttributeError{Msg: "an attribute belongs to a sender: name it"}
	}
	if err := CheckAttribute(name, value); err != nil {
		return err
	}
	return p.cfg.Store.SetAttribute(sender, a, name, value)
}
