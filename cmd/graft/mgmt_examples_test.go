package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mgmtExamplesDir holds mgmt's YAML examples, byte for byte as mgmt ships
// them (its README says from where and at which commits).
const mgmtExamplesDir = "testdata/mgmt-examples"

// mgmtRefuses lists the examples that mgmt itself refuses, with the error
// graft check gives for them: the same reason mgmt's file Validate gives
// (its README quotes mgmt's messages).
var mgmtRefuses = map[string][]string{
	"pre-yaml/autoedges2.yaml": {`autoedges2.yaml:16:5: file "file2": content: "/tmp/foo/" is a directory (it ends in /) and cannot have content`},
	"pre-yaml/autoedges3.yaml": {`autoedges3.yaml:24:5: file "file2": source: "/dev/null" and path "/etc/drbd.d/" must both be directories (ending in /) or both files`},
}

// mgmtKindsGraftLacks lists the examples that use a kind of mgmt's that
// issue 11 does not bring, with graft check's error.
var mgmtKindsGraftLacks = map[string][]string{
	"augeas1.yaml": {`augeas1.yaml:4:3: resources: unknown resource kind "augeas"`},
	"pippet1.yaml": {`pippet1.yaml:4:3: resources: unknown resource kind "pippet"`},
	"pippet2.yaml": {`pippet2.yaml:4:3: resources: unknown resource kind "pippet"`},
	"virt3.yaml":   {`virt3.yaml:4:3: resources: unknown resource kind "virt"`},
}

// svcMerged says whether this tree has the svc kind. With it the svc
// examples must load; without it they must fail only with the errors of
// mgmtSvcErrors. Set it when svc is merged (the test fails until it is set
// right, either way).
const svcMerged = true

// mgmtSvcErrors are graft check's errors for the examples that use svc,
// while graft has no svc kind.
var mgmtSvcErrors = map[string][]string{
	"pre-yaml/svc1.yaml": {
		`svc1.yaml:12:3: resources: unknown resource kind "svc"`,
		`svc1.yaml:29:5: edge "e2": to: no resource svc "purpleidea" in this graph`,
	},
	"pre-yaml/svc2.yaml":       {`svc2.yaml:4:3: resources: unknown resource kind "svc"`},
	"pre-yaml/autoedges3.yaml": {`autoedges3.yaml:26:3: resources: unknown resource kind "svc"`},
}

// mgmtExampleFiles returns the examples' paths relative to mgmtExamplesDir.
func mgmtExampleFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.yaml", "pre-yaml/*.yaml"} {
		m, err := filepath.Glob(filepath.Join(mgmtExamplesDir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			files = append(files, strings.TrimPrefix(p, mgmtExamplesDir+"/"))
		}
	}
	if len(files) == 0 {
		t.Fatalf("no examples in %s", mgmtExamplesDir)
	}
	return files
}

// checkErrors returns the error lines graft check printed: not its
// warnings, nor its closing count; each without the directory of the file.
func checkErrors(stderr, dir string) []string {
	var errs []string
	for line := range strings.Lines(stderr) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" || strings.HasPrefix(line, "warning: ") || strings.HasPrefix(line, "graft: check: ") {
			continue
		}
		errs = append(errs, strings.TrimPrefix(line, dir+"/"))
	}
	return errs
}

// sameErrors reports whether every error got starts with one of want, one
// for one (a line may go on past what want says, with the kinds graft
// knows, say).
func sameErrors(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	left := slices.Clone(want)
	for _, g := range got {
		i := slices.IndexFunc(left, func(w string) bool { return strings.HasPrefix(g, w) })
		if i < 0 {
			return false
		}
		left = slices.Delete(left, i, i+1)
	}
	return true
}

// Every YAML example mgmt ships loads with graft check, except those mgmt
// refuses itself (graft refuses them for the same reason) and those that
// need a kind graft does not have, each failing with exactly the errors
// listed for it.
func TestCheckLoadsEveryMgmtExample(t *testing.T) {
	files := mgmtExampleFiles(t)
	for _, list := range []map[string][]string{mgmtRefuses, mgmtKindsGraftLacks, mgmtSvcErrors} {
		for f := range list {
			if !slices.Contains(files, f) {
				t.Errorf("%s is listed but is not in %s", f, mgmtExamplesDir)
			}
		}
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			want := slices.Concat(mgmtRefuses[f], mgmtKindsGraftLacks[f])
			if !svcMerged {
				want = append(want, mgmtSvcErrors[f]...)
			}
			p := filepath.Join(mgmtExamplesDir, f)
			code, stdout, stderr := graft(t, "check", p)
			got := checkErrors(stderr, filepath.Dir(p))
			if len(want) == 0 {
				if code != 0 || !strings.HasPrefix(stdout, p+": ok") {
					t.Errorf("graft check refuses it: exit %d, stdout %q, errors %q", code, stdout, got)
				}
				return
			}
			if code != 1 || !sameErrors(got, want) {
				t.Errorf("exit %d, errors %q; want exit 1 and exactly the errors %q", code, got, want)
			}
		})
	}
}

// mgmtExample returns one of mgmt's examples as it ships it.
func mgmtExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(mgmtExamplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
