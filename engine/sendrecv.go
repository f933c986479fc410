package engine

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// Sender is implemented by resources that publish values for send/recv
// edges. A sender calls Runtime.Send during CheckApply.
type Sender interface {
	// Sends returns, for each key the resource can send, a value of the
	// type it sends under that key (the zero value will do).
	Sends() map[string]any
}

// sendEdge is one key sent from a vertex to a child.
type sendEdge struct {
	to *node
	KeyMap
}

// checkSendRecv checks every send/recv key of the graph: the sender sends
// the key, the receiver has the parameter, the types fit, and no parameter
// receives from two places.
func (g *Graph) checkSendRecv() []error {
	var errs []error
	from := map[ID]map[string]ID{} // receiver -> key -> sender
	for _, e := range g.edges {
		if len(e.Keys) == 0 {
			continue
		}
		src, dst := g.vertices[g.index[e.From]], g.vertices[g.index[e.To]]
		sends := map[string]any{}
		if s, ok := src.Res.(Sender); ok {
			sends = s.Sends()
		}
		for _, k := range e.Keys {
			bad := func(format string, args ...any) {
				errs = append(errs, &EdgeError{From: e.From, To: e.To,
					Err: fmt.Errorf("send %s -> recv %s: %s", k.Send, k.Recv, fmt.Sprintf(format, args...))})
			}
			val, ok := sends[k.Send]
			if !ok {
				bad("%s sends no %q (it sends: %s)", e.From, k.Send, keyList(sends))
				continue
			}
			field, ok := paramField(dst.Res, k.Recv)
			if !ok {
				bad("%s has no parameter %q", e.To, k.Recv)
				continue
			}
			if st := reflect.TypeOf(val); !canReceive(st, field.Type()) {
				bad("%s sends %s %s but %s parameter %s is %s",
					e.From, k.Send, typeName(st), e.To, k.Recv, typeName(field.Type()))
				continue
			}
			if from[e.To] == nil {
				from[e.To] = map[string]ID{}
			}
			if prev, dup := from[e.To][k.Recv]; dup {
				bad("%s %s already receives from %s", e.To, k.Recv, prev)
				continue
			}
			from[e.To][k.Recv] = e.From
		}
	}
	return errs
}

func keyList(m map[string]any) string {
	if len(m) == 0 {
		return "nothing"
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "nil"
	}
	return t.String()
}

// canReceive reports whether a value of type src can be stored in a
// parameter of type dst: directly, or through a pointer (a string into a
// *string parameter, whose nil means "unset").
func canReceive(src, dst reflect.Type) bool {
	if src == nil {
		return false
	}
	return src.AssignableTo(dst) || (dst.Kind() == reflect.Pointer && src.AssignableTo(dst.Elem()))
}

// paramField finds the exported field of a resource struct whose YAML key is
// key (its yaml tag name, or its lower-cased field name), searching inline
// structs too.
func paramField(r Res, key string) (reflect.Value, bool) {
	v := reflect.ValueOf(r)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return reflect.Value{}, false
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	return findField(v, key)
}

func findField(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			fv := v.Field(i)
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				if found, ok := findField(fv, key); ok {
					return found, true
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// setParam stores a received value in a resource's parameter.
func setParam(r Res, key string, val any) error {
	field, ok := paramField(r, key)
	if !ok {
		return fmt.Errorf("no parameter %q", key)
	}
	v := reflect.ValueOf(val)
	dt := field.Type()
	switch {
	case !v.IsValid():
		field.Set(reflect.Zero(dt))
	case v.Type().AssignableTo(dt):
		field.Set(v)
	case dt.Kind() == reflect.Pointer && v.Type().AssignableTo(dt.Elem()):
		p := reflect.New(dt.Elem())
		p.Elem().Set(v)
		field.Set(p)
	default:
		return fmt.Errorf("parameter %q is %s, cannot hold %s", key, dt, v.Type())
	}
	return nil
}

// sendValues checks values a resource sends against what it declared.
func sendValues(r Res, vals map[string]any) error {
	s, ok := r.(Sender)
	if !ok {
		return fmt.Errorf("send: this resource declares no values to send")
	}
	decl := s.Sends()
	for k, v := range vals {
		want, ok := decl[k]
		if !ok {
			return fmt.Errorf("send: %q is not one of %s", k, keyList(decl))
		}
		if reflect.TypeOf(v) != reflect.TypeOf(want) {
			return fmt.Errorf("send: %q is %s, declared %s", k, typeName(reflect.TypeOf(v)), typeName(reflect.TypeOf(want)))
		}
	}
	return nil
}
