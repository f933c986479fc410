package faultsuite

import (
	"testing"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/world"
)

// The Worlds' lease timeout at the test timings keeps the ratio to the
// cluster's ReleaseGrace that the defaults have in production, so that a
// silent holder gives up its slots with the margin it has there before the
// cluster frees them (twice ReleaseGrace after it was last heard from):
// with a lease of 250 ms against a grace of 200 ms the suite tested a
// thinner margin than production's.
func TestFaultSuiteLeaseKeepsProductionRatioToReleaseGrace(t *testing.T) {
	prod, test := cluster.DefaultServerConfig(), cluster.TestServerConfig()
	prodRatio := float64(world.DefaultLeaseTimeout) / float64(prod.ReleaseGrace)
	testRatio := float64(leaseTimeout()) / float64(test.ReleaseGrace)
	t.Logf("lease:ReleaseGrace is %v:%v (%.2f) in production, %v:%v (%.2f) at the test timings",
		world.DefaultLeaseTimeout, prod.ReleaseGrace, prodRatio, leaseTimeout(), test.ReleaseGrace, testRatio)
	if testRatio != prodRatio {
		t.Errorf("lease:ReleaseGrace is %.2f at the test timings, %.2f in production", testRatio, prodRatio)
	}
	// The holder's check runs every quarter lease: it notices a lease run
	// out up to a quarter late.
	if lost, freed := leaseTimeout()*5/4, 2*test.ReleaseGrace; lost >= freed {
		t.Errorf("a silent holder's slot is lost up to %v after its last contact, not before the cluster frees it (%v)",
			lost, freed)
	}
}
