package yamlgraph

import (
	"reflect"
	"sort"
	"strings"
)

// paramKeys returns the YAML keys a resource value decodes, sorted.
func paramKeys(v any) []string {
	fields := paramFields(v)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// paramKeys is the package's paramKeys, computed once per type and parse.
// The list is shared: callers must not change it.
func (p *parser) paramKeys(v any) []string {
	t := reflect.TypeOf(v)
	if k, ok := p.keys[t]; ok {
		return k
	}
	if p.keys == nil {
		p.keys = map[reflect.Type][]string{}
	}
	k := paramKeys(v)
	p.keys[t] = k
	return k
}

// paramFields returns the YAML keys a resource value decodes and the type
// each decodes into, following the same rules as the yaml package: the tag
// name, or the lower-cased field name when untagged; inline structs
// contribute their keys; "-" is skipped.
func paramFields(v any) map[string]reflect.Type {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fields := map[string]reflect.Type{}
	if t == nil || t.Kind() != reflect.Struct {
		return fields
	}
	collectFields(t, fields)
	return fields
}

func collectFields(t reflect.Type, fields map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, fields)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
}

// suggest returns the known key closest to an unknown one, if it is close
// enough to be a likely typo.
func suggest(unknown string, known []string) string {
	best, bestD := "", len(unknown)/2+1
	for _, k := range known {
		if d := distance(strings.ToLower(unknown), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
