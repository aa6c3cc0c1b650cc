package docker

import (
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
)

// TestOrphanDirBytes: a leaked graph-driver directory's finding carries its
// size in bytes as Actual, which report/metrics sums as orphan bytes.
func TestOrphanDirBytes(t *testing.T) {
	s := dockertest.Build(t, dockertest.DefaultSpec("vfs", dockertest.IsRoot()))
	dockertest.WriteFile(t, s.Path(s.LayerRoot(dockertest.HexID("orphan"))+"/leaked"), make([]byte, 4096), 0o644)
	dockertest.WriteFile(t, s.Path(s.LayerRoot(dockertest.HexID("orphan"))+"/more"), make([]byte, 100), 0o644)
	rep := runAudit(t, s.Root, Options{})
	var got []int64
	for _, f := range rep.Findings {
		if f.Check != OrphanDir {
			continue
		}
		n, ok := f.OrphanBytes()
		if !ok {
			t.Fatalf("%s is not registered as an orphan check", OrphanDir)
		}
		got = append(got, n)
	}
	if len(got) != 1 || got[0] != 4196 {
		t.Fatalf("orphan bytes of %s findings = %v, want [4196]\n%s", OrphanDir, got, findingsText(rep))
	}
	if !report.IsOrphan(OrphanDir) || report.IsOrphan(LayerUnused) {
		t.Fatal("orphan registration: want OrphanDir only")
	}
}
