package layercheck_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const mod = "github.com/layercheck/layercheck"

// modules are the third-party modules docs/DESIGN.md's import table names in
// rows that start with "stdlib": the name the table uses, the import path
// prefix it stands for.
var modules = map[string]string{
	"go-digest":                   "github.com/opencontainers/go-digest",
	"image-spec":                  "github.com/opencontainers/image-spec/",
	"vbatts/tar-split":            "github.com/vbatts/tar-split/",
	"go-containerregistry's name": "github.com/google/go-containerregistry/pkg/name",
}

// importRule is one row of docs/DESIGN.md's import table, parsed.
type importRule struct {
	row, cell   string   // the row's two cells as the table writes them
	pkgs        []string // the packages it governs: a path, or x/* for every package under x
	testSupport bool     // only tests and rows allowing test support may import these packages
	anything    bool     // every layercheck package may be imported but those in but
	but         []string // with anything: the forbidden patterns ("test support": every test-support package)
	may         []string // without anything: the layercheck packages allowed
	stdlib      bool     // third-party imports limited to the modules named in third
	third       []string // import path prefixes of the modules allowed when stdlib
}

// TestDependencyDirection enforces the import table of docs/DESIGN.md, so the
// layering stays true as the code grows: verify knows sources only through
// package source, report is a leaf, and nothing but tests imports fixtures.
// The rules are read from the table itself, so the table cannot drift from
// what is enforced, and a violation names the row that forbids it.
func TestDependencyDirection(t *testing.T) {
	rules := readImportTable(t)
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./... failed, so the import rules of docs/DESIGN.md cannot be checked: %v\n%s", err, stderr.Bytes())
	}
	imports := map[string][]string{} // module-relative package -> its non-test imports
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imps, _ := strings.Cut(line, ":")
		imports[rel(pkg)] = strings.Fields(imps)
	}
	if len(imports) < 2 {
		t.Fatalf("go list ./... listed %d packages; want the whole module:\n%s", len(imports), out)
	}
	ruleOf := map[string]*importRule{}
	for pkg := range imports {
		if pkg == "" {
			continue // the module root holds only this test and the package doc
		}
		if r := governing(rules, pkg); r != nil {
			ruleOf[pkg] = r
		} else {
			t.Errorf("package %s falls under no row of docs/DESIGN.md's import table: add one saying what it may import", pkg)
		}
	}
	isTestSupport := func(pkg string) bool { r := ruleOf[pkg]; return r != nil && r.testSupport }

	pkgs := make([]string, 0, len(ruleOf))
	for pkg := range ruleOf {
		pkgs = append(pkgs, pkg)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		r := ruleOf[pkg]
		for _, imp := range imports[pkg] {
			if imp == mod || strings.HasPrefix(imp, mod+"/") {
				if !r.allows(rel(imp), isTestSupport(rel(imp))) {
					t.Errorf("%s imports %s, which docs/DESIGN.md's import table forbids: its row %q may import %q", pkg, rel(imp), r.row, r.cell)
				}
				continue
			}
			if r.stdlib && strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") && !r.allowsModule(imp) {
				t.Errorf("%s imports %s; docs/DESIGN.md's import table lets row %q import only %q", pkg, imp, r.row, r.cell)
			}
		}
	}
}

func rel(pkg string) string { return strings.TrimPrefix(strings.TrimPrefix(pkg, mod), "/") }

// matches reports whether pattern (a path, or x/* for every package under x)
// names pkg.
func matches(pattern, pkg string) bool {
	if dir, ok := strings.CutSuffix(pattern, "/*"); ok {
		return strings.HasPrefix(pkg, dir+"/")
	}
	return pkg == pattern
}

// governing returns the most specific rule naming pkg: an exact path before
// the longest x/*.
func governing(rules []*importRule, pkg string) *importRule {
	var best *importRule
	bestLen := -1
	for _, r := range rules {
		for _, p := range r.pkgs {
			if !matches(p, pkg) {
				continue
			}
			n := len(p)
			if !strings.HasSuffix(p, "/*") {
				n = 1 << 30
			}
			if n > bestLen {
				best, bestLen = r, n
			}
		}
	}
	return best
}

func (r *importRule) allows(imp string, testSupport bool) bool {
	if r.anything {
		for _, b := range r.but {
			if matches(b, imp) || (b == "test support" && testSupport) {
				return false
			}
		}
		return true
	}
	for _, m := range r.may {
		if matches(m, imp) {
			return true
		}
	}
	return false
}

func (r *importRule) allowsModule(imp string) bool {
	for _, p := range r.third {
		if imp == p || strings.HasPrefix(imp, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}

var comment = regexp.MustCompile(`\([^)]*\)`)

// readImportTable parses the table that follows "| package | may import |" in
// docs/DESIGN.md (the grammar is described under the table).
func readImportTable(t *testing.T) []*importRule {
	t.Helper()
	b, err := os.ReadFile("docs/DESIGN.md")
	if err != nil {
		t.Fatalf("the import rules live in docs/DESIGN.md's table: %v", err)
	}
	_, table, ok := strings.Cut(string(b), "| package | may import |\n|---|---|\n")
	if !ok {
		t.Fatal(`docs/DESIGN.md has no import table (a "| package | may import |" header and its |---|---| line)`)
	}
	var rules []*importRule
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 2 {
			t.Fatalf("docs/DESIGN.md import table: row %q has %d cells, want 2", line, len(cells))
		}
		r, err := parseRule(cells[0], cells[1])
		if err != nil {
			t.Fatalf("docs/DESIGN.md import table, row %q: %v", cells[0], err)
		}
		rules = append(rules, r)
	}
	if len(rules) == 0 {
		t.Fatal("docs/DESIGN.md's import table has no rows")
	}
	return rules
}

func parseRule(row, cell string) (*importRule, error) {
	r := &importRule{row: row, cell: cell}
	for _, p := range strings.Split(row, ",") {
		r.pkgs = append(r.pkgs, strings.TrimSpace(p))
	}
	text := strings.TrimSpace(comment.ReplaceAllString(cell, ""))
	if rest, ok := strings.CutPrefix(text, "test support:"); ok {
		r.testSupport, text = true, strings.TrimSpace(rest)
	}
	if text == "anything" || strings.HasPrefix(text, "anything but ") {
		r.anything = true
		for _, b := range strings.Split(strings.TrimPrefix(strings.TrimPrefix(text, "anything"), " but "), ",") {
			if b = strings.TrimSpace(b); b != "" {
				r.but = append(r.but, b)
			}
		}
		return r, nil
	}
	for i, tok := range strings.Split(text, ",") {
		tok = strings.TrimSpace(tok)
		switch {
		case tok == "stdlib" && i == 0:
			r.stdlib = true
		case modules[tok] != "":
			r.third = append(r.third, modules[tok])
		case strings.Contains(tok, " ") || tok == "":
			if r.stdlib {
				return nil, errors.New("a row starting with stdlib may name only layercheck packages and the modules this test knows (" + tok + ")")
			}
			// a description of third-party imports, which this row leaves free
		default:
			r.may = append(r.may, tok)
		}
	}
	return r, nil
}
