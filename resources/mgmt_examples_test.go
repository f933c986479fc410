package resources

import (
	"os"
	"path/filepath"
	"testing"
)

// mgmtExamplesDir holds mgmt's YAML examples, byte for byte as mgmt ships
// them; its README says from where. graft check's test runs over all of
// them; the tests here use the ones of the kinds they test.
const mgmtExamplesDir = "../cmd/graft/testdata/mgmt-examples"

// mgmtExample returns one of mgmt's examples (a path under mgmtExamplesDir).
func mgmtExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(mgmtExamplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
