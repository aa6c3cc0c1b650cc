package layercheck_test

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/layercheck/layercheck"

// TestDependencyDirection enforces the import table of docs/DESIGN.md, so the
// layering stays true as the code grows: verify knows sources only through
// package source, report is a leaf, and nothing but tests imports fixtures.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	forbidden := map[string][]string{
		"report":         {mod + "/"},
		"source":         {mod + "/source/", mod + "/verify", mod + "/registryclient", mod + "/hoststore", mod + "/tarsplit", mod + "/fixtures"},
		"tarsplit":       {mod + "/"},
		"verify":         {mod + "/source/", mod + "/registryclient", mod + "/hoststore", mod + "/cmd", mod + "/fixtures"},
		"source/":        {mod + "/verify", mod + "/registryclient", mod + "/hoststore", mod + "/cmd", mod + "/fixtures"},
		"registryclient": {mod + "/verify", mod + "/hoststore", mod + "/cmd", mod + "/fixtures", mod + "/source/"},
		"hoststore/":     {mod + "/registryclient", mod + "/cmd", mod + "/fixtures", mod + "/source/"},
		"cmd/":           {mod + "/fixtures"},
		"compare":        {mod + "/cmd", mod + "/fixtures", mod + "/registryclient", mod + "/source/"},
		"store":          {mod + "/hoststore", mod + "/source/", mod + "/registryclient", mod + "/compare", mod + "/cmd", mod + "/fixtures"},
		"ref":            {mod + "/"},
		"policy":         {mod + "/verify", mod + "/source", mod + "/hoststore", mod + "/store", mod + "/registryclient", mod + "/compare", mod + "/cmd", mod + "/fixtures"},
		"report/metrics": {mod + "/cmd", mod + "/fixtures", mod + "/registryclient", mod + "/source", mod + "/verify", mod + "/hoststore", mod + "/store", mod + "/compare", mod + "/schedule"},
		"schedule":       {mod + "/"},
	}
	allowedInReport := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, mod), "/")
		for prefix, bad := range forbidden {
			if rel != prefix && !(strings.HasSuffix(prefix, "/") && strings.HasPrefix(rel, prefix)) {
				continue
			}
			for _, imp := range strings.Fields(imports) {
				for _, b := range bad {
					if strings.HasPrefix(imp, b) && !(prefix == "source" && imp == mod+"/report") && !allowedInReport[imp] {
						t.Errorf("%s imports %s, which docs/DESIGN.md forbids", pkg, imp)
					}
				}
			}
		}
		if rel == "report" || rel == "tarsplit" || rel == "schedule" {
			for _, imp := range strings.Fields(imports) {
				if strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") && !(rel == "tarsplit" && strings.HasPrefix(imp, "github.com/vbatts/tar-split")) {
					t.Errorf("%s imports %s; it may import only the standard library%s", pkg, imp, map[bool]string{true: " and tar-split"}[rel == "tarsplit"])
				}
			}
		}
	}
}
