package graphviz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/graftcm/graft/internal/atomicfile"
)

// ErrNoDot is returned by Render when the dot program is not installed.
var ErrNoDot = errors.New("the dot program (Graphviz) is not installed or not in PATH: install graphviz, or render the DOT text elsewhere")

// LookDot returns the path of the dot program, or ErrNoDot.
func LookDot() (string, error) {
	bin, err := exec.LookPath("dot")
	if err != nil {
		return "", ErrNoDot
	}
	return bin, nil
}

// Render runs dot on the DOT text src and writes the picture in format
// (svg or png) to path, replacing it atomically: a picture dot fails to
// make leaves the file as it was.
func Render(ctx context.Context, src []byte, format, path string) error {
	switch format {
	case "svg", "png":
	default:
		return fmt.Errorf("render %s: format %q: want svg or png", path, format)
	}
	bin, err := LookDot()
	if err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-T"+format)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(src), &out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("render %s: dot: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	if err := atomicfile.Write(path, out.Bytes(), 0o644, false); err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	return nil
}
