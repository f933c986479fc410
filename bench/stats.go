package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Better says which way a figure improves.
type Better string

const (
	lower  Better = "lower"
	higher Better = "higher"
)

// Stat is one system's runs of one figure: the median, min and max of Runs.
type Stat struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Runs   []float64 `json:"runs"`
}

// Figure is one measured quantity, for each system that ran it. Ratio is
// how many times better graft is than the peer (peer/graft for a figure
// where lower is better, graft/peer otherwise): above 1, graft is ahead.
type Figure struct {
	Group   string           `json:"group"`
	Name    string           `json:"name"`
	Unit    string           `json:"unit"`
	Better  Better           `json:"better"`
	Systems map[string]*Stat `json:"systems"`
	Peer    string           `json:"peer,omitempty"`
	Ratio   float64          `json:"ratio,omitempty"`
}

// results collects the figures in the order they were first measured.
type results struct {
	figs  []*Figure
	index map[string]*Figure
}

func newResults() *results { return &results{index: map[string]*Figure{}} }

// add records one run of figure name by system sys.
func (r *results) add(group, name, unit string, better Better, sys string, v float64) {
	f := r.index[name]
	if f == nil {
		f = &Figure{Group: group, Name: name, Unit: unit, Better: better, Systems: map[string]*Stat{}}
		r.index[name] = f
		r.figs = append(r.figs, f)
	}
	s := f.Systems[sys]
	if s == nil {
		s = &Stat{}
		f.Systems[sys] = s
	}
	s.Runs = append(s.Runs, v)
}

// finish computes every median, min, max and ratio.
func (r *results) finish() {
	for _, f := range r.figs {
		for _, s := range f.Systems {
			sorted := slices.Sorted(slices.Values(s.Runs))
			s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
			s.Median = median(sorted)
		}
		g := f.Systems["graft"]
		for _, peer := range []string{"etcd", "mgmt"} {
			p := f.Systems[peer]
			if g == nil || p == nil || g.Median <= 0 || p.Median <= 0 {
				continue
			}
			f.Peer = peer
			if f.Better == lower {
				f.Ratio = p.Median / g.Median
			} else {
				f.Ratio = g.Median / p.Median
			}
		}
	}
}

// median is the middle of sorted values (the mean of the two middle ones
// for an even count).
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// systems are the systems that ran any figure, graft first.
func (r *results) systems() []string {
	out := []string{"graft"}
	for _, peer := range []string{"etcd", "mgmt"} {
		for _, f := range r.figs {
			if f.Systems[peer] != nil {
				out = append(out, peer)
				break
			}
		}
	}
	return out
}

// table prints the figures, one line each: every system's median with
// min-max, and the ratio where a peer ran the same workload.
func (r *results) table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	systems := r.systems()
	head := []string{"figure", "unit"}
	for _, s := range systems {
		head = append(head, s+" median (min-max)")
	}
	if len(systems) > 1 {
		head = append(head, "ratio (>1: graft ahead)")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, f := range r.figs {
		cells := []string{f.Name, f.Unit}
		for _, sys := range systems {
			cells = append(cells, f.Systems[sys].String())
		}
		if len(systems) > 1 {
			ratio := "-"
			if f.Ratio > 0 {
				ratio = fmt.Sprintf("%.2fx vs %s", f.Ratio, f.Peer)
			}
			cells = append(cells, ratio)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// String is "median (min-max)", or "-" for a system that did not run.
func (s *Stat) String() string {
	if s == nil {
		return "-"
	}
	if len(s.Runs) == 1 {
		return num(s.Median)
	}
	return fmt.Sprintf("%s (%s-%s)", num(s.Median), num(s.Min), num(s.Max))
}

// num formats v with three significant digits or so.
func num(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
