package report

import (
	"strconv"
	"sync"
)

var (
	orphanMu     sync.RWMutex
	orphanChecks = map[Check]bool{}
)

// RegisterOrphan marks checks whose findings each name disk space that no
// record of the store references (a leaked graph-driver directory, a blob
// or snapshot no metadata names), with the size in bytes as the finding's
// Actual (a decimal integer; empty when unknown). Packages that define
// such checks call it in init beside Register; report/metrics sums their
// findings as a store's orphan bytes.
func RegisterOrphan(checks ...Check) {
	orphanMu.Lock()
	defer orphanMu.Unlock()
	for _, c := range checks {
		orphanChecks[c] = true
	}
}

// IsOrphan says whether RegisterOrphan marked the check.
func IsOrphan(c Check) bool {
	orphanMu.RLock()
	defer orphanMu.RUnlock()
	return orphanChecks[c]
}

// OrphanBytes returns the bytes an orphan finding names: its Actual read
// as a decimal count. ok is false for a finding of a check that is not an
// orphan check; an orphan finding without a readable size counts 0 bytes.
func (f Finding) OrphanBytes() (n int64, ok bool) {
	if !IsOrphan(f.Check) {
		return 0, false
	}
	n, err := strconv.ParseInt(f.Actual, 10, 64)
	if err != nil || n < 0 {
		return 0, true
	}
	return n, true
}
