package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/report"
)

// TestMain fails the suite when any finding carried a check ID that is not
// in the catalog (report.Unregistered): such a finding would get a severity
// nobody chose.
func TestMain(m *testing.M) {
	code := m.Run()
	if u := report.Unregistered(); len(u) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: findings with check IDs missing from the catalog: %v\n", u)
		code = 1
	}
	os.Exit(code)
}

// checkConst is one constant of type report.Check declared in the module.
type checkConst struct {
	pkg, name, id string
}

// checkConsts finds every `Name report.Check = "id"` (or Check in package
// report) declared in non-test Go files of the module.
func checkConsts(t *testing.T) []checkConst {
	t.Helper()
	root := filepath.Join("..", "..")
	var out []checkConst
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if !isCheckType(vs.Type, f.Name.Name) {
					continue
				}
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
							out = append(out, checkConst{pkg: filepath.ToSlash(rel), name: n.Name, id: strings.Trim(lit.Value, `"`)})
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func isCheckType(e ast.Expr, pkg string) bool {
	switch x := e.(type) {
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		return ok && id.Name == "report" && x.Sel.Name == "Check"
	case *ast.Ident:
		return pkg == "report" && x.Name == "Check"
	}
	return false
}

// TestCheckCatalog: every check constant is registered, by the package
// that declares it; no two packages use one Go name for checks (searching
// the name must lead to its one producer); no ID is declared twice.
func TestCheckCatalog(t *testing.T) {
	consts := checkConsts(t)
	if len(consts) < 100 {
		t.Fatalf("found only %d check constants: the scan is broken", len(consts))
	}
	byName := map[string][]string{}
	byID := map[string][]string{}
	for _, c := range consts {
		byName[c.name] = append(byName[c.name], c.pkg+"."+c.name+"="+c.id)
		byID[c.id] = append(byID[c.id], c.pkg+"."+c.name)
		ci, ok := report.Lookup(report.Check(c.id))
		switch {
		case !ok:
			t.Errorf("%s.%s (%q) is not registered in the catalog", c.pkg, c.name, c.id)
		case report.Producer(ci.ID) != c.pkg:
			t.Errorf("%s.%s (%q) is registered by %q, not by the package that declares it", c.pkg, c.name, c.id, report.Producer(ci.ID))
		}
	}
	for _, m := range []map[string][]string{byName, byID} {
		var keys []string
		for k, v := range m {
			if len(v) > 1 {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Errorf("%q is declared more than once: %v", k, m[k])
		}
	}
}
