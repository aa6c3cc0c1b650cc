package docker

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
)

// countTarSplitOpens counts, per layerdb directory, the tar-splits the
// audits run during the test open.
func countTarSplitOpens(t *testing.T) func() map[string]int {
	var mu sync.Mutex
	n := map[string]int{}
	tarSplitOpened = func(rel string) {
		mu.Lock()
		n[rel]++
		mu.Unlock()
	}
	t.Cleanup(func() { tarSplitOpened = nil })
	return func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := n
		n = map[string]int{}
		return out
	}
}

// requireOpenedOnce: every tar-split counted was opened once, and (want >=
// 0) want of them were.
func requireOpenedOnce(t *testing.T, got map[string]int, want int) {
	t.Helper()
	if want >= 0 && len(got) != want {
		t.Errorf("%d tar-splits opened, want %d: %v", len(got), want, got)
	}
	for rel, n := range got {
		if n != 1 {
			t.Errorf("%s/tar-split.json.gz opened %d times, want once", rel, n)
		}
	}
}

// chainSpec is one image of depth layers: each adds files, rewrites one of
// its parent's, whites one out and makes a directory opaque.
func chainSpec(driver string, depth int) dockertest.StoreSpec {
	var layers [][]dockertest.Entry
	for l := 0; l < depth; l++ {
		entries := []dockertest.Entry{
			dockertest.Dir(fmt.Sprintf("l%d/", l), 0o755),
			dockertest.Reg(fmt.Sprintf("l%d/a", l), fmt.Sprintf("a of %d\n", l), 0o644),
			dockertest.Reg(fmt.Sprintf("l%d/b", l), fmt.Sprintf("b of %d\n", l), 0o644),
			dockertest.Dir(fmt.Sprintf("l%d/sub/", l), 0o755),
			dockertest.Reg(fmt.Sprintf("l%d/sub/c", l), "c\n", 0o600),
			dockertest.Symlink(fmt.Sprintf("l%d/link", l), "a"),
		}
		if l > 0 {
			p := l - 1
			entries = append(entries,
				dockertest.Dir(fmt.Sprintf("l%d/", p), 0o755),
				dockertest.Reg(fmt.Sprintf("l%d/a", p), fmt.Sprintf("a of %d, rewritten by %d\n", p, l), 0o644),
				dockertest.Whiteout(fmt.Sprintf("l%d/.wh.b", p)),
				dockertest.Dir(fmt.Sprintf("l%d/sub/", p), 0o755),
				dockertest.Whiteout(fmt.Sprintf("l%d/sub/.wh..wh..opq", p)),
			)
		}
		layers = append(layers, entries)
	}
	return linkedSpec(driver, "C", "chain", layers)
}

// TestTarSplitReadOnce: an audit decodes each layer's tar-split once. On
// vfs (and btrfs, zfs) each layer's directory is compared with the replay
// of its whole chain; that replay is built from the parent's, so a chain of
// N layers opens N tar-splits, not N + N(N+1) as a replay from the base for
// every layer (twice over: once for the tree, once for the headers) did.
func TestTarSplitReadOnce(t *testing.T) {
	const depth = 8
	for _, driver := range []string{"vfs", "overlay2"} {
		t.Run(driver, func(t *testing.T) {
			s := dockertest.Build(t, chainSpec(driver, depth))
			opens := countTarSplitOpens(t)
			r := runAudit(t, s.Root, Options{Jobs: 1})
			requireClean(t, r)
			requireOpenedOnce(t, opens(), depth)
			// Several jobs: still every layer rebuilt and replayed, clean.
			requireClean(t, runAudit(t, s.Root, Options{Jobs: 3}))
		})
	}
}

// TestTarSplitReadOnceMisaligned: a file of the wrong length shifts the
// rebuilt stream; the headers compared with the disk still come from the
// one decode of the tar-split (it was read a second time for them).
func TestTarSplitReadOnceMisaligned(t *testing.T) {
	for _, driver := range []string{"vfs", "overlay2"} {
		t.Run(driver, func(t *testing.T) {
			s := dockertest.Build(t, chainSpec(driver, 3))
			l := s.Layers["C1"]
			must(t, os.WriteFile(s.Path(l.Dir+"/l1/a"), []byte("a longer file than recorded\n"), 0o644))
			must(t, os.Chmod(s.Path(l.Dir+"/l1/sub/c"), 0o640))
			opens := countTarSplitOpens(t)
			r := runAudit(t, s.Root, Options{Jobs: 1})
			requireFinding(t, r, want{check: FileCRC, entry: "l1/a"})
			requireFinding(t, r, want{check: LstatMismatch, entry: "l1/sub/c", digest: l.ChainID.String()})
			requireOpenedOnce(t, opens(), -1)
		})
	}
}

// TestManyImagesSharedLayers: the work of an audit grows with the distinct
// layers of the store, not with images × layers: ten images built on the
// prefixes of one chain of four layers open four tar-splits, each once.
func TestManyImagesSharedLayers(t *testing.T) {
	const depth, images = 4, 10
	for _, driver := range []string{"vfs", "overlay2"} {
		t.Run(driver, func(t *testing.T) {
			spec := chainSpec(driver, depth)
			chain := spec.Images[0].Layers
			for i := 1; i < images; i++ {
				spec.Images = append(spec.Images, dockertest.ImageSpec{
					Key: fmt.Sprintf("img%d", i), Refs: []string{fmt.Sprintf("img%d:1", i)},
					Layers: chain[:1+i%depth], EmptyHistory: i,
				})
			}
			s := dockertest.Build(t, spec)
			opens := countTarSplitOpens(t)
			r := runAudit(t, s.Root, Options{Jobs: 2})
			requireClean(t, r)
			if len(r.Images) != images {
				t.Fatalf("%d images in the report, want %d", len(r.Images), images)
			}
			requireOpenedOnce(t, opens(), depth) // the distinct layers
		})
	}
}
