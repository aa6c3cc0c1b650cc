package diskcheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
)

// fullRootChain lays out a full-rootfs chain of depth layers as vfs does
// (each directory the whole rootfs of its chain) and returns its layers,
// their tar-split openers counting opens into opens.
func fullRootChain(t *testing.T, depth int, opens map[int]int, mu *sync.Mutex) []*Layer {
	uid, gid := 0, 0
	if !dockertest.IsRoot() {
		uid, gid = os.Getuid(), os.Getgid()
	}
	base := t.TempDir()
	var tars [][]byte
	var chain []ChainLayer
	var out []*Layer
	for l := 0; l < depth; l++ {
		entries := []dockertest.Entry{
			dockertest.Dir(fmt.Sprintf("l%d/", l), 0o755),
			dockertest.Reg(fmt.Sprintf("l%d/a", l), fmt.Sprintf("a of %d\n", l), 0o644),
			dockertest.Reg(fmt.Sprintf("l%d/b", l), "b\n", 0o644),
			dockertest.Symlink(fmt.Sprintf("l%d/link", l), "a"),
		}
		if l > 0 {
			entries = append(entries,
				dockertest.Dir(fmt.Sprintf("l%d/", l-1), 0o755),
				dockertest.Whiteout(fmt.Sprintf("l%d/.wh.b", l-1)))
		}
		for i := range entries {
			entries[i].UID, entries[i].GID = uid, gid
		}
		tars = append(tars, dockertest.MakeTar(t, entries))
		ts := dockertest.Disassemble(t, tars[l])
		dir := filepath.Join(base, fmt.Sprint(l))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, tb := range tars {
			dockertest.UnpackLayer(t, dir, tb, false)
		}
		idx := l
		open := func() (io.ReadCloser, error) {
			mu.Lock()
			opens[idx]++
			mu.Unlock()
			return io.NopCloser(bytes.NewReader(ts)), nil
		}
		chain = append(chain, ChainLayer{Digest: fmt.Sprintf("layer%d", l), TarSplit: open})
		out = append(out, &Layer{Digest: chain[l].Digest, Root: dir, RootRel: fmt.Sprint(l), TarSplit: open,
			Chain: append([]ChainLayer(nil), chain...)})
	}
	return out
}

func testEnv(t *testing.T) *Env {
	return &Env{
		Checks: Checks{FileCRC: "t-crc", MissingFile: "t-missing", UnsafePath: "t-unsafe", TarSplit: "t-tarsplit",
			NotReproducible: "t-notrepro", LayerTar: "t-tar", Lstat: "t-lstat", Whiteout: "t-whiteout", ExtraFile: "t-extra"},
		Layout:     Layout{FullRoot: true},
		Privileged: SeesTrustedXattrs(),
		XattrOK:    ProcUsable(),
		Problem: func(subj report.Subject, format string, args ...any) {
			t.Errorf("problem [%s]: %s", subj, fmt.Sprintf(format, args...))
		},
	}
}

// checkChain checks every layer in chain order and returns the findings.
func checkChain(t *testing.T, env *Env, layers []*Layer) []report.Finding {
	var all []report.Finding
	for _, l := range layers {
		r, err := Check(context.Background(), env, l)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Walked {
			t.Errorf("layer %s not walked", l.Digest)
		}
		all = append(all, r.Findings...)
	}
	return all
}

// TestChainReplayLinear: the layers of a full-rootfs chain of N layers, each
// compared with the replay of its chain, decode N tar-splits in all (the
// replay from the base for every layer decoded N + N(N+1)).
func TestChainReplayLinear(t *testing.T) {
	const depth = 10
	var mu sync.Mutex
	opens := map[int]int{}
	layers := fullRootChain(t, depth, opens, &mu)
	env := testEnv(t)
	if fs := checkChain(t, env, layers); len(fs) > 0 {
		t.Fatalf("clean chain gave findings: %v", fs)
	}
	for i := 0; i < depth; i++ {
		if opens[i] != 1 {
			t.Errorf("tar-split of layer %d opened %d times, want once", i, opens[i])
		}
	}
	if m := env.chains(); m.cost > chainBudget {
		t.Errorf("memo holds %d units, over its budget %d", m.cost, chainBudget)
	}
}

// TestChainReplayOverBudget: with the memo's budget exhausted the trees are
// rebuilt from tar-splits decoded again, with the same findings.
func TestChainReplayOverBudget(t *testing.T) {
	const depth = 5
	defer func(b int) { chainBudget = b }(chainBudget)
	for _, budget := range []int{chainBudget, 1} {
		chainBudget = budget
		var mu sync.Mutex
		opens := map[int]int{}
		layers := fullRootChain(t, depth, opens, &mu)
		// An inherited copy changed in the top layer's directory.
		top := layers[depth-1]
		if err := os.Chmod(filepath.Join(top.Root, "l1/a"), 0o600); err != nil {
			t.Fatal(err)
		}
		fs := checkChain(t, testEnv(t), layers)
		if len(fs) != 1 || fs[0].Check != "t-lstat" || fs[0].Subject.Entry != "l1/a" || fs[0].Subject.Digest != top.Digest {
			t.Errorf("budget %d: findings %v, want one t-lstat of l1/a in %s", budget, fs, top.Digest)
		}
		total := 0
		for _, n := range opens {
			total += n
		}
		if budget > 1 && total != depth {
			t.Errorf("budget %d: %d tar-split opens, want %d", budget, total, depth)
		}
		if budget == 1 && total <= depth {
			t.Errorf("budget 1: %d tar-split opens; the test no longer exercises the fallback", total)
		}
	}
}
