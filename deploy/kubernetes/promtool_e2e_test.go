//go:build e2e

package kubernetes

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

// TestRulesPromtool: the PrometheusRule's groups, as the operator hands them
// to Prometheus, pass the real `promtool check rules` (Debian's prometheus):
// PromQL that parses, templates that expand.
func TestRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("LAYERCHECK_E2E_REQUIRE") == "1" {
			t.Fatal("promtool not installed (Debian package prometheus; scripts/e2e-install.sh)")
		}
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	rule := only[*monitoringv1.PrometheusRule](t, load(t, "alerts"))
	b, err := yaml.Marshal(struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}{rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "layercheck.rules.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s\n%s", err, out, b)
	}
	t.Logf("%s", out)
}
