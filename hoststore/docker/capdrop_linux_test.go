//go:build linux

package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"github.com/layercheck/layercheck/hoststore/internal/diskcheck"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
)

// TestSeesTrustedXattrs: the capability test agrees with the kernel's own
// account of this process (CapEff in /proc/self/status).
func TestSeesTrustedXattrs(t *testing.T) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			const capSysAdmin = 21
			if want := eff&(1<<capSysAdmin) != 0; diskcheck.SeesTrustedXattrs() != want {
				t.Fatalf("diskcheck.SeesTrustedXattrs() = %v, CapEff %x says %v", !want, eff, want)
			}
			return
		}
	}
	t.Skip("no CapEff in /proc/self/status")
}

// TestRootWithoutSysAdmin: root with CAP_SYS_ADMIN dropped (a Kubernetes
// pod keeping only DAC_READ_SEARCH) cannot see overlay2's opaque markers;
// the audit says so once as a problem and reports no false whiteout
// finding. The store is built with the markers as root, then audited by
// this test binary re-run under setpriv without CAP_SYS_ADMIN.
func TestRootWithoutSysAdmin(t *testing.T) {
	if root := os.Getenv("LAYERCHECK_TEST_CAPDROP_ROOT"); root != "" {
		st, err := Open(root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		b := &report.Builder{}
		if err := st.Audit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		json.NewEncoder(os.Stdout).Encode(b.Finish("host", root, "test"))
		return
	}
	if !dockertest.IsRoot() || !diskcheck.SeesTrustedXattrs() {
		t.Skip("needs root with CAP_SYS_ADMIN to write the opaque markers")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	s := dockertest.Build(t, dockertest.DefaultSpec("overlay2", true))
	cmd := exec.Command(setpriv, "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--", os.Args[0], "-test.run=^TestRootWithoutSysAdmin$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LAYERCHECK_TEST_CAPDROP_ROOT="+s.Root)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("audit under setpriv: %v\n%s", err, out)
	}
	var rep report.Report
	line, _, _ := strings.Cut(string(out), "\n")
	if err := json.Unmarshal([]byte(line), &rep); err != nil {
		t.Fatalf("child output: %v\n%s", err, out)
	}
	for _, f := range rep.Findings {
		if f.Severity == report.Error || f.Check == Whiteout {
			t.Errorf("finding without CAP_SYS_ADMIN: %s %s %s", f.Check, f.Subject, f.Message)
		}
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Message, "CAP_SYS_ADMIN") {
		t.Errorf("problems = %+v, want the one saying opaque directories were not checked", rep.Problems)
	}
}
