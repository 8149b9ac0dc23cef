package configs

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The YAML decoder's own errors name Go types ("cannot unmarshal !!str
// `lots` into int", "field max_recipents not found in type
// configs.Limits"), and Go durations stop at hours. This file is the one
// place that turns the file's view into the decoder's and back: days in
// durations, and errors that name the key, its line and what the value
// should be.

// scalarAt is a scalar of the file: its line and column, its key path and
// its value.
type scalarAt struct {
	line, col int
	path      string
	value     string
	style     yaml.Style
	typ       reflect.Type // the Go type it decodes into, nil if unknown
}

var durationType = reflect.TypeOf(time.Duration(0))

// walkYAML calls visit for every node under the root of a document, with
// its key path (see Config.Line), the line of its key (of the node itself
// for a sequence item) and the Go type it decodes into within a value of
// type t (nil when t is nil or the node has no field there).
func walkYAML(root *yaml.Node, t reflect.Type, visit func(n *yaml.Node, path string, line int, t reflect.Type)) {
	var walk func(n *yaml.Node, path string, line int, t reflect.Type)
	walk = func(n *yaml.Node, path string, line int, t reflect.Type) {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if path != "" {
			visit(n, path, line, t)
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, c.Line, t)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				walk(n.Content[i+1], KeyPath(path, k.Value), k.Line, fieldType(t, k.Value))
			}
		case yaml.SequenceNode:
			var et reflect.Type
			if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
				et = t.Elem()
			}
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i), c.Line, et)
			}
		}
	}
	walk(root, "", root.Line, t)
}

// scalars lists the scalar values of data with the Go type each decodes
// into when decoded into a value of type t.
func scalars(data []byte, t reflect.Type) []scalarAt {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil
	}
	var out []scalarAt
	walkYAML(&root, t, func(n *yaml.Node, path string, _ int, t reflect.Type) {
		if n.Kind == yaml.ScalarNode {
			out = append(out, scalarAt{line: n.Line, col: n.Column, path: path, value: n.Value, style: n.Style, typ: t})
		}
	})
	return out
}

// fieldType is the type that the value of key decodes into in a value of
// type t: a struct field by its yaml tag, a map's values.
func fieldType(t reflect.Type, key string) reflect.Type {
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem()
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == key {
				return f.Type
			}
		}
	}
	return nil
}

// days is a duration with a day count first: "5d", "1d12h", "2d30m".
var days = regexp.MustCompile(`^(\d+)d((?:\d+(?:h|m|s|ms))*)$`)

// expandDays rewrites the durations of data written with days into hours
// ("5d" becomes "120h"), in place: lines stay where they are, so that
// errors still name the operator's lines.
func expandDays(data []byte, t reflect.Type) []byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	changed := false
	ss := scalars(data, t)
	// Right to left, so that a change does not move what is left to do
	// on its line.
	for i := len(ss) - 1; i >= 0; i-- {
		s := ss[i]
		if s.typ != durationType {
			continue
		}
		m := days.FindStringSubmatch(s.value)
		if m == nil || s.line < 1 || s.line > len(lines) {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100000 {
			continue
		}
		h := strconv.Itoa(n*24) + "h" + m[2]
		line := lines[s.line-1]
		at := s.col - 1
		if s.style == yaml.DoubleQuotedStyle || s.style == yaml.SingleQuotedStyle {
			at++
		}
		if at < 0 || at+len(s.value) > len(line) || string(line[at:at+len(s.value)]) != s.value {
			continue
		}
		lines[s.line-1] = append(append(append([]byte{}, line[:at]...), h...), line[at+len(s.value):]...)
		changed = true
	}
	if !changed {
		return data
	}
	return bytes.Join(lines, nil)
}

var (
	notFound   = regexp.MustCompile("^line (\\d+): field (.+) not found in type (\\S+)$")
	cannotInto = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) (?:`(.*)` )?into (\\S+)$")
)

// friendly rewrites one error line of the YAML decoder so that it names
// the key and says what the value should be, never a Go type.
func friendly(msg string, ss []scalarAt, lines map[string]int) string {
	if m := notFound.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		for p, l := range lines {
			if l == line && (p == m[2] || strings.HasSuffix(p, "."+m[2])) {
				return fmt.Sprintf("line %d: %s: unknown key", line, p)
			}
		}
		return fmt.Sprintf("line %d: %s: unknown key", line, m[2])
	}
	if m := cannotInto.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		path := ""
		for _, s := range ss {
			if s.line == line && s.value == m[3] && m[3] != "" {
				path = s.path
				break
			}
		}
		if path == "" {
			// A list or mapping in the wrong place: the shortest key on
			// its line is the one it is the value of.
			for p, l := range lines {
				if l == line && (path == "" || len(p) < len(path)) {
					path = p
				}
			}
		}
		what := "of another kind"
		switch t := m[4]; {
		case t == "time.Duration":
			what = "a duration (such as 90s, 5m, 4h or 5d)"
		case t == "bool":
			what = "true or false"
		case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
			what = "a whole number"
		case strings.HasPrefix(t, "float"):
			what = "a number"
		case t == "string":
			what = "a string"
		case strings.HasPrefix(t, "[]"):
			what = "a list"
		case strings.HasPrefix(t, "map["):
			what = "a mapping of keys to values"
		case m[2] == "str" || m[2] == "int" || m[2] == "float" || m[2] == "bool":
			what = "a mapping of options, not a single value"
		}
		value := m[3]
		if m[2] == "seq" || m[2] == "map" {
			value = "a " + map[string]string{"seq": "list", "map": "mapping"}[m[2]]
		} else {
			value = strconv.Quote(value)
		}
		if path == "" {
			return fmt.Sprintf("line %d: %s is not %s", line, value, what)
		}
		return fmt.Sprintf("line %d: %s: %s is not %s", line, path, value, what)
	}
	return msg
}
