package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// graphSpec is a generated graph: n noops (with edges by shape), or n
// files under a directory.
type graphSpec struct {
	shape string // "chain", "fan", "dag" or "files"
	n     int
}

// name is how tables call the graph: "chain 10k noops", "1k files".
func (g graphSpec) name() string {
	if g.shape == "files" {
		return count(g.n) + " files"
	}
	return g.shape + " " + count(g.n) + " noops"
}

// count writes 1000 as 1k and 100000 as 100k.
func count(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// write writes the graph in mgmt's YAML format to path; files go under
// fileDir.
func (g graphSpec) write(path, fileDir string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "graph: bench\nresources:\n")
	if g.shape == "files" {
		fmt.Fprintf(w, "  file:\n")
		for i := range g.n {
			fmt.Fprintf(w, "  - name: f%d\n    path: %s\n    content: \"file %d\\n\"\n    state: exists\n",
				i, filepath.Join(fileDir, fmt.Sprintf("f%d", i)), i)
		}
	} else {
		fmt.Fprintf(w, "  noop:\n")
		for i := range g.n {
			fmt.Fprintf(w, "  - name: n%d\n", i)
		}
		writeEdges(w, g.edges())
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// edges are the graph's edges, as pairs of noop indexes: a chain links
// each noop to the next, a fan the first to every other, and a random
// DAG (the same on every run) each noop to up to two earlier ones.
func (g graphSpec) edges() [][2]int {
	var e [][2]int
	switch g.shape {
	case "chain":
		for i := 1; i < g.n; i++ {
			e = append(e, [2]int{i - 1, i})
		}
	case "fan":
		for i := 1; i < g.n; i++ {
			e = append(e, [2]int{0, i})
		}
	case "dag":
		rng := rand.New(rand.NewPCG(15, uint64(g.n)))
		for i := 1; i < g.n; i++ {
			a := rng.IntN(i)
			e = append(e, [2]int{a, i})
			if b := rng.IntN(i); b != a {
				e = append(e, [2]int{b, i})
			}
		}
	}
	return e
}

func writeEdges(w *bufio.Writer, edges [][2]int) {
	if len(edges) == 0 {
		return
	}
	fmt.Fprintf(w, "edges:\n")
	for i, e := range edges {
		fmt.Fprintf(w, "- name: e%d\n  from: {kind: noop, name: n%d}\n  to: {kind: noop, name: n%d}\n", i, e[0], e[1])
	}
}

// swapGraph is n unconnected noops and one file at path with content:
// the graph a one-resource swap rewrites.
func swapGraph(file string, n int, path, content string) error {
	f, err := os.Create(file + ".new")
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "graph: bench\nresources:\n  noop:\n")
	for i := range n {
		fmt.Fprintf(w, "  - name: n%d\n", i)
	}
	fmt.Fprintf(w, "  file:\n  - name: swapped\n    path: %s\n    content: %q\n    state: exists\n", path, content)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Replaced whole, as editors save: the agent never reads half a file.
	return os.Rename(file+".new", file)
}
