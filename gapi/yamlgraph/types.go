package yamlgraph

import (
	"errors"
	"fmt"
	"math"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// decode decodes the mapping params into v, a pointer to a struct. A value
// of the wrong type is reported at its own line and column with the type
// its key wants, rather than as the yaml package words it ("cannot
// unmarshal !!str `abc` into uint16", with a line and no column).
func (p *parser) decode(params *yaml.Node, v any, where string) bool {
	err := params.Decode(v)
	if err == nil {
		return true
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		p.l.fromYAML(err, where)
		return false
	}
	fields := paramFields(v)
	found := false
	for i := 0; i+1 < len(params.Content); i += 2 {
		k, val := resolve(params.Content[i]), resolve(params.Content[i+1])
		t, ok := fields[k.Value]
		if !ok {
			continue
		}
		if at, sub, want := wrongType(val, t); at != nil {
			p.l.add(at, where, "%s%s: want %s, got %s", k.Value, sub, want, describe(at))
			found = true
		}
	}
	if !found { // a type error inside a value's own decoding: say it as it came
		p.l.fromYAML(err, where)
	}
	return false
}

// wrongType returns the innermost node of n that does not decode into a
// value of type t, where it is below n (such as "[2]" or ".HOME"), and the
// type it should have been; at is nil if n decodes.
func wrongType(n *yaml.Node, t reflect.Type) (at *yaml.Node, sub, want string) {
	n = resolve(n)
	if n.Decode(reflect.New(t).Interface()) == nil {
		return nil, "", ""
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			if at, sub, want := wrongType(item, t.Elem()); at != nil {
				return at, fmt.Sprintf("[%d]%s", i, sub), want
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if at, _, want := wrongType(k, t.Key()); at != nil {
				return at, "", want + " as each key"
			}
			if at, sub, want := wrongType(n.Content[i+1], t.Elem()); at != nil {
				return at, "." + k.Value + sub, want
			}
		}
	}
	return n, "", describeType(t)
}

// describeType names what a Go type accepts, in words for graph authors.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		if bits == 64 {
			return "a whole number"
		}
		return fmt.Sprintf("a whole number from %d to %d", -(int64(1) << (bits - 1)), int64(math.MaxInt64>>(64-bits)))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if t.Bits() == 64 {
			return "a whole number, 0 or more"
		}
		return fmt.Sprintf("a whole number from 0 to %d", uint64(math.MaxUint64>>(64-t.Bits())))
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list, each item " + describeType(t.Elem())
	case reflect.Map:
		return "a mapping, each value " + describeType(t.Elem())
	case reflect.Struct:
		return "a mapping"
	}
	return "a " + t.String()
}
