// Command importcheck fails when an import among graft's packages points
// the wrong way: `make lint` runs it, with the arrows of DESIGN.md
// section 1 encoded in rules.go.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

func main() {
	pkgs, err := list()
	if err != nil {
		fmt.Fprintln(os.Stderr, "importcheck:", err)
		os.Exit(2)
	}
	bad := check(pkgs, rules())
	for _, b := range bad {
		fmt.Fprintln(os.Stderr, "importcheck:", b)
	}
	if len(bad) > 0 {
		os.Exit(1)
	}
}

// list runs `go list -json` on every package of the module and decodes its stream of packages.
func list() ([]pkg, error) {
	var out, stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go list: %w: %s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(&out)
	for {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return pkgs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading go list's output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
}
