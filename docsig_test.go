package layercheck_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docCall is a call the docs quote in backticks with its package:
// `verify.Pass(ctx, r, opts)` or `verify.Verifier.VerifyAll(ctx, srcs, b)`.
var docCall = regexp.MustCompile("`([a-z][a-z0-9]*)\\.([A-Z]\\w*)(?:\\.([A-Z]\\w*))?\\(([^)`]*)\\)")

// TestDocSignatures: every package function or method the docs quote with its
// arguments exists with exactly those parameters (names, in order), so the
// docs cannot keep an old signature after the code changes.
func TestDocSignatures(t *testing.T) {
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, "README.md")
	n := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range docCall.FindAllStringSubmatch(string(b), -1) {
			pkg, typ, fn, args := m[1], m[2], m[3], m[4]
			if fn == "" {
				typ, fn = "", typ
			}
			if _, err := os.Stat(pkg); err != nil {
				continue // not a package of this module
			}
			n++
			params, ok := paramNames(t, pkg, typ, fn)
			name := strings.TrimPrefix(m[0], "`")
			switch {
			case !ok:
				t.Errorf("%s quotes %s, but package %s has no such function or method", doc, name, pkg)
			case strings.Join(strings.Fields(args), " ") != strings.Join(params, ", "):
				t.Errorf("%s quotes %s; the code's parameters are (%s)", doc, name, strings.Join(params, ", "))
			}
		}
	}
	if n == 0 {
		t.Fatal("the docs quote no call of a layercheck package: the pattern no longer matches them")
	}
}

// paramNames returns the parameter names of pkg's function fn, or of its
// method typ.fn when typ is not empty.
func paramNames(t *testing.T, pkg, typ, fn string) ([]string, bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(pkg, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parsing %s: %v", file, err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Name.Name != fn || (fd.Recv == nil) != (typ == "") {
				continue
			}
			if typ != "" && recvType(fd.Recv.List[0].Type) != typ {
				continue
			}
			var names []string
			for _, field := range fd.Type.Params.List {
				for _, id := range field.Names {
					names = append(names, id.Name)
				}
			}
			return names, true
		}
	}
	return nil, false
}

func recvType(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return recvType(e.X)
	case *ast.Ident:
		return e.Name
	case *ast.IndexExpr:
		return recvType(e.X)
	}
	return ""
}
