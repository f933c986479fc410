// Package graphviz draws the graph an agent runs (api.Graph, as GET
// /v1/graph serves it) as a Graphviz DOT digraph, and runs the dot
// program to turn one into SVG or PNG.
//
// The DOT text is deterministic: vertices sorted by kind then name, edges
// by their ends, one statement a line. Each vertex is filled with the
// colour of its state (see Palette) and labelled kind[name], an
// autogrouped vertex with its members below. A plain edge is a solid black
// arrow; a notify edge is dashed and orange, labelled "notify"; a
// send/recv edge is bold and blue, labelled with its keys, "send -> recv"
// a line. A legend shows the colours and edge kinds.
package graphviz

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/graftcm/graft/api"
)

// StateColor is the fill colour of vertices in a state.
type StateColor struct{ State, Color string }

// Palette returns the fill colour of a vertex in each state, in the order
// the legend shows them. A state not in it is drawn white.
func Palette() []StateColor {
	return []StateColor{
		{"ok", "#b7e4c7"},      // green
		{"dirty", "#ffe08a"},   // yellow
		{"running", "#9ecae1"}, // blue
		{"waiting", "#d9d9d9"}, // grey
		{"failed", "#f4a3a3"},  // red
	}
}

// The colours of edges.
const (
	notifyColor = "#d95f02" // orange
	sendColor   = "#2166ac" // blue
	unknownFill = "#ffffff"
)

// fill returns the colour of state.
func fill(state string) string {
	for _, p := range Palette() {
		if p.State == state {
			return p.Color
		}
	}
	return unknownFill
}

// DOT returns g as a DOT digraph.
func DOT(g api.Graph) []byte {
	var b strings.Builder
	_ = Write(&b, g) // a strings.Builder does not fail
	return []byte(b.String())
}

// Write writes g to w as a DOT digraph.
func Write(w io.Writer, g api.Graph) error {
	var b strings.Builder
	b.WriteString("digraph graft {\n")
	fmt.Fprintf(&b, "\tlabel=%s;\n", Quote(title(g)))
	b.WriteString("\tlabelloc=t;\n\tfontname=\"Helvetica\";\n")
	b.WriteString("\tnode [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=11];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=9];\n")
	vs := slices.Clone(g.Vertices)
	slices.SortFunc(vs, func(a, b api.GraphVertex) int {
		return compareIDs(api.ResourceID{Kind: a.Kind, Name: a.Name}, api.ResourceID{Kind: b.Kind, Name: b.Name})
	})
	for _, v := range vs {
		writeVertex(&b, v)
	}
	es := slices.Clone(g.Edges)
	slices.SortFunc(es, func(a, b api.GraphEdge) int {
		return cmp.Or(compareIDs(a.From, b.From), compareIDs(a.To, b.To))
	})
	for _, e := range es {
		writeEdge(&b, e)
	}
	writeLegend(&b)
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// title is the graph's caption: its name, the host and whether it is
// converged.
func title(g api.Graph) string {
	name := g.Graph
	if name == "" {
		name = "(no graph yet)"
	}
	conv := "not converged"
	if g.Converged {
		conv = "converged"
	}
	if g.Host == "" {
		return fmt.Sprintf("graph %s: %s", name, conv)
	}
	return fmt.Sprintf("graph %s on %s: %s", name, g.Host, conv)
}

func compareIDs(a, b api.ResourceID) int {
	return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
}

// NodeID is the DOT node name of a resource: kind[name], as graft writes
// resources everywhere else.
func NodeID(id api.ResourceID) string { return id.Kind + "[" + id.Name + "]" }

func writeVertex(b *strings.Builder, v api.GraphVertex) {
	id := NodeID(api.ResourceID{Kind: v.Kind, Name: v.Name})
	label := []string{id}
	if len(v.Members) > 0 {
		label[0] = fmt.Sprintf("autogroup of %d:", len(v.Members))
		for _, m := range v.Members {
			label = append(label, NodeID(m))
		}
	}
	state := v.State
	if v.Waiting != "" {
		state += " (" + v.Waiting + ")"
	}
	fmt.Fprintf(b, "\t%s [label=%s, fillcolor=%s, tooltip=%s];\n",
		Quote(id), Quote(strings.Join(label, "\n")), Quote(fill(v.State)), Quote(state))
}

func writeEdge(b *strings.Builder, e api.GraphEdge) {
	var attrs, label []string
	if e.Notify {
		label = append(label, "notify")
	}
	keys := slices.Clone(e.Keys)
	slices.SortFunc(keys, func(a, b api.GraphKey) int {
		return cmp.Or(strings.Compare(a.Send, b.Send), strings.Compare(a.Recv, b.Recv))
	})
	for _, k := range keys {
		label = append(label, k.Send+" -> "+k.Recv)
	}
	switch {
	case len(keys) > 0 && e.Notify:
		attrs = append(attrs, `style="bold,dashed"`, "color="+Quote(sendColor))
	case len(keys) > 0:
		attrs = append(attrs, "style=bold", "color="+Quote(sendColor))
	case e.Notify:
		attrs = append(attrs, "style=dashed", "color="+Quote(notifyColor))
	}
	if len(label) > 0 {
		attrs = append(attrs, "label="+Quote(strings.Join(label, "\n")))
	}
	fmt.Fprintf(b, "\t%s -> %s", Quote(NodeID(e.From)), Quote(NodeID(e.To)))
	if len(attrs) > 0 {
		fmt.Fprintf(b, " [%s]", strings.Join(attrs, ", "))
	}
	b.WriteString(";\n")
}

// legendPrefix starts the names of the legend's nodes; a resource's node
// name always has a "[", which these lack, so they cannot clash.
const legendPrefix = "legend:"

// writeLegend draws a box with a node in each state's colour and an edge
// of each kind.
func writeLegend(b *strings.Builder) {
	b.WriteString("\tsubgraph cluster_legend {\n")
	b.WriteString("\t\tlabel=\"legend\";\n\t\tcolor=\"#999999\";\n\t\tfontsize=10;\n")
	b.WriteString("\t\tnode [fontsize=9];\n")
	var states []string
	for _, p := range Palette() {
		n := Quote(legendPrefix + p.State)
		states = append(states, n)
		fmt.Fprintf(b, "\t\t%s [label=%s, fillcolor=%s];\n", n, Quote(p.State), Quote(p.Color))
	}
	// Invisible edges keep the states in a column.
	fmt.Fprintf(b, "\t\t%s [style=invis];\n", strings.Join(states, " -> "))
	for _, e := range []struct{ kind, attrs string }{
		{"dependency", ""},
		{"notify", fmt.Sprintf(" [style=dashed, color=%s]", Quote(notifyColor))},
		{"send/recv", fmt.Sprintf(" [style=bold, color=%s]", Quote(sendColor))},
	} {
		from, to := Quote(legendPrefix+e.kind+":from"), Quote(legendPrefix+e.kind)
		fmt.Fprintf(b, "\t\t%s [shape=point, width=0.05];\n", from)
		fmt.Fprintf(b, "\t\t%s [shape=plaintext, style=\"\", label=%s];\n", to, Quote(e.kind))
		fmt.Fprintf(b, "\t\t%s -> %s%s;\n", from, to, e.attrs)
	}
	b.WriteString("\t}\n")
}

// Quote returns s as a DOT quoted string that shows s as it is in a
// label. A double quote is escaped, a backslash doubled (dot would read
// "\l" or "\N" in a label as an escape), and a newline becomes the label
// line break "\n", so that every statement stays on one line. Other
// control characters and bytes that are not UTF-8 become "\xHH" (dot
// shows them as "xHH"): no two strings quote alike.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}
