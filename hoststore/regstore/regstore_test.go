package regstore_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/hoststore"
	"github.com/layercheck/layercheck/hoststore/regstore"
	"github.com/layercheck/layercheck/hoststore/regstore/regstoretest"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	"github.com/layercheck/layercheck/store/storetest"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pushImage pushes a built image into repo as a registry does: every blob
// uploaded and linked, the manifest (OCI, or Docker with DockerMediaTypes)
// stored as a revision and tagged.
func pushImage(st *regstoretest.Storage, repo string, b *fixtures.Built, tags ...string) digest.Digest {
	st.PushBlob(repo, b.Config)
	for _, l := range b.Layers {
		st.PushBlob(repo, l.Stored)
	}
	data, _, _ := b.Manifest()
	return st.PushManifest(repo, data, tags...)
}

func img(name string, seed int64, comp string, plat fixtures.Platform) *fixtures.Built {
	return fixtures.MustBuild(fixtures.Image{
		Name:     name,
		Platform: plat,
		Layers: []fixtures.Layer{
			{Compression: comp, Files: []fixtures.File{fixtures.Dir("etc"), fixtures.Reg("etc/seed", fixtures.RandomBytes(seed, 3000))}},
			{Compression: comp, Files: []fixtures.File{fixtures.Reg("app.bin", fixtures.RandomBytes(seed+1, 5000))}},
		},
	})
}

// world is a clean storage and what was pushed into it.
type world struct {
	st                  *regstoretest.Storage
	app, old, zst, amd  *fixtures.Built
	appM, oldM, idxM    digest.Digest
	sbomM, zstM, dockM  digest.Digest
	dock                *fixtures.Built
	arm                 *fixtures.Built
	amdM, armM, sbomCfg digest.Digest
}

// cleanWorld lays out: library/app (tag 1, and an untagged older
// revision), other/copy (the same image as library/app:1, sharing blobs),
// lc/multi (a two-platform index, tagged, with an SBOM artifact whose
// subject is the index), lc/zstd (zstd layers), lc/docker (Docker schema 2).
func cleanWorld(t *testing.T) *world {
	w := &world{st: regstoretest.New(t)}
	st := w.st
	w.app = img("library/app:1", 1, fixtures.Gzip, fixtures.Platform{})
	w.old = img("library/app:0", 10, fixtures.Gzip, fixtures.Platform{})
	w.appM = pushImage(st, "library/app", w.app, "1")
	w.oldM = pushImage(st, "library/app", w.old)
	pushImage(st, "other/copy", w.app, "copy")

	w.amd = img("lc/multi:amd64", 20, fixtures.Gzip, fixtures.Platform{OS: "linux", Arch: "amd64"})
	w.arm = img("lc/multi:arm64", 30, fixtures.Gzip, fixtures.Platform{OS: "linux", Arch: "arm64", Variant: "v8"})
	w.amdM = pushImage(st, "lc/multi", w.amd)
	w.armM = pushImage(st, "lc/multi", w.arm)
	idx, _ := json.Marshal(ocispec.Index{Versioned: specsV2(), MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{w.amd.ManifestDesc(), w.arm.ManifestDesc()}})
	w.idxM = st.PushManifest("lc/multi", idx, "latest")
	empty := []byte("{}")
	w.sbomCfg = st.PushBlob("lc/multi", empty)
	sbomLayer := st.PushBlob("lc/multi", []byte(`{"spdxVersion":"SPDX-2.3"}`))
	sbom, _ := json.Marshal(ocispec.Manifest{Versioned: specsV2(), MediaType: ocispec.MediaTypeImageManifest, ArtifactType: "application/spdx+json",
		Config:  ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(empty), Size: 2},
		Layers:  []ocispec.Descriptor{{MediaType: "application/spdx+json", Digest: sbomLayer, Size: 26}},
		Subject: &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: w.idxM, Size: int64(len(idx))}})
	w.sbomM = st.PushManifest("lc/multi", sbom)

	w.zst = img("lc/zstd:1", 40, fixtures.Zstd, fixtures.Platform{})
	w.zstM = pushImage(st, "lc/zstd", w.zst, "1")
	w.dock = fixtures.MustBuild(fixtures.Image{Name: "lc/docker:1", DockerMediaTypes: true, Layers: []fixtures.Layer{
		{Compression: fixtures.Gzip, Files: []fixtures.File{fixtures.Reg("d.txt", fixtures.RandomBytes(50, 2000))}}}})
	w.dockM = pushImage(st, "lc/docker", w.dock, "1")
	return w
}

func specsV2() (v struct {
	SchemaVersion int `json:"schemaVersion"`
}) {
	v.SchemaVersion = 2
	return v
}

func open(t *testing.T, root string, opts store.Options) *regstore.Store {
	t.Helper()
	s, err := regstore.Open(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func audit(t *testing.T, root string, opts store.Options) *report.Report {
	t.Helper()
	s := open(t, root, opts)
	b := &report.Builder{}
	if err := s.Audit(context.Background(), b); err != nil {
		t.Fatalf("Audit: %v", err)
	}
	return b.Finish("host", s.String(), "test")
}

func TestConformance(t *testing.T) {
	w := cleanWorld(t)
	want := func(b *fixtures.Built, names ...string) store.Image {
		im := store.Image{ID: b.ConfigDigest, Names: names}
		for i, l := range b.Layers {
			im.Layers = append(im.Layers, store.Layer{DiffID: l.DiffID, Digest: l.Digest, ChainID: b.ChainIDs[i]})
		}
		return im
	}
	storetest.Run(t, storetest.Case{
		Name: "registry", Kind: store.Registry, Root: w.st.Root,
		Open: func(t *testing.T, opts store.Options) store.Store {
			s, err := hoststore.Open(w.st.Root, opts)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Images: []store.Image{
			want(w.app, "library/app:1", "other/copy:copy"),
			want(w.amd, "lc/multi:latest"),
			want(w.zst, "lc/zstd:1"),
			want(w.dock, "lc/docker:1"),
		},
	})
}

func TestCleanAudit(t *testing.T) {
	w := cleanWorld(t)
	rep := audit(t, w.st.Root, store.Options{Jobs: 2})
	for _, f := range rep.Findings {
		if f.Severity != report.Info {
			t.Errorf("finding on a clean storage: %s %s %s: %s", f.Severity, f.Check, f.Subject, f.Message)
		}
	}
	for _, p := range rep.Problems {
		t.Errorf("problem: %s: %s", p.Subject, p.Message)
	}
	names := map[string]bool{}
	for _, im := range rep.Images {
		names[im.Name+" "+im.Platform] = true
		if im.ConfigDigest == w.app.ConfigDigest.String() && im.Layers[0].DiffID != w.app.Layers[0].DiffID.String() {
			t.Errorf("image %s: layer 0 diffID %s, want %s", im.Name, im.Layers[0].DiffID, w.app.Layers[0].DiffID)
		}
	}
	for _, n := range []string{"library/app:1 linux/amd64", "library/app@" + w.oldM.String() + " linux/amd64", "other/copy:copy linux/amd64",
		"lc/multi:latest linux/amd64", "lc/multi:latest linux/arm64/v8", "lc/zstd:1 linux/amd64", "lc/docker:1 linux/amd64"} {
		if !names[n] {
			t.Errorf("no image %q in the report (have %v)", n, names)
		}
	}
	if rep.Summary.Verdict != report.VerdictOK {
		t.Errorf("verdict %s", rep.Summary.Verdict)
	}
}

// TestOrphansAreGarbageCollectsSet: what garbage-collect --dry-run
// (without --delete-untagged) deletes: after a manifest DELETE, the blobs
// only it used; an untagged revision keeps its blobs; an index keeps its
// children's; a blob nobody references goes.
func TestOrphansAreGarbageCollectsSet(t *testing.T) {
	w := cleanWorld(t)
	stray := w.st.PutBlob([]byte("nobody references me"))
	w.st.DeleteManifest("lc/zstd", w.zstM)
	s := open(t, w.st.Root, store.Options{})
	want := []digest.Digest{stray, w.zstM, w.zst.ConfigDigest, w.zst.Layers[0].Digest, w.zst.Layers[1].Digest}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	if got := s.Orphans(); !reflect.DeepEqual(got, want) {
		t.Errorf("Orphans() = %v\nwant %v", got, want)
	}
	rep := audit(t, w.st.Root, store.Options{})
	n := 0
	for _, f := range rep.Findings {
		if f.Check == regstore.CheckRegBlobOrphan {
			n++
		} else if f.Severity != report.Info && !(f.Check == regstore.CheckRegRepoEmpty && f.Subject.Image == "lc/zstd") {
			t.Errorf("unexpected finding after a manifest delete: %s %s: %s", f.Check, f.Subject, f.Message)
		}
	}
	if n != len(want) {
		t.Errorf("%d orphan findings, want %d", n, len(want))
	}
}

// corruption is one damage done to a clean world and the regstore checks
// (exactly) and verifier checks (at least) it must raise.
type corruption struct {
	name    string
	opts    store.Options
	damage  func(t *testing.T, w *world)
	want    []report.Check // the exact regstore-* checks at warning or error
	verifer []report.Check // verifier checks that must be among the findings
}

func flip(t *testing.T, p string, at func(n int) int) {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[at(len(data))] ^= 0x55
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptions(t *testing.T) {
	layer0 := func(w *world) digest.Digest { return w.app.Layers[0].Digest }
	cases := []corruption{
		{name: "flipped layer blob", damage: func(t *testing.T, w *world) {
			flip(t, w.st.Path(regstoretest.BlobRel(layer0(w))), func(n int) int { return n / 2 })
		}, want: []report.Check{regstore.CheckRegBlobDigest}, verifer: []report.Check{report.LayerDigest}},
		{name: "truncated layer blob", damage: func(t *testing.T, w *world) {
			p := w.st.Path(regstoretest.BlobRel(layer0(w)))
			if err := os.Truncate(p, 100); err != nil {
				t.Fatal(err)
			}
		}, want: []report.Check{regstore.CheckRegBlobDigest}, verifer: []report.Check{report.LayerDigest, report.LayerSize}},
		{name: "deleted layer blob", damage: func(t *testing.T, w *world) {
			w.st.Remove(filepath.Dir(regstoretest.BlobRel(layer0(w))))
		}, want: []report.Check{regstore.CheckRegRefMissing, regstore.CheckRegLinkDangling}, verifer: []report.Check{report.LayerMissing}},
		{name: "flipped sha512 orphan", damage: func(t *testing.T, w *world) {
			data := []byte("a blob stored under its sha512 digest")
			d := digest.SHA512.FromBytes(data)
			data[0] ^= 1
			w.st.PutBlobAs(d, data)
		}, want: []report.Check{regstore.CheckRegBlobDigest, regstore.CheckRegBlobOrphan}},
		{name: "manifest blob edited", damage: func(t *testing.T, w *world) {
			p := w.st.Path(regstoretest.BlobRel(w.appM))
			data, _ := os.ReadFile(p)
			os.WriteFile(p, append(data, ' '), 0o644)
		}, want: []report.Check{regstore.CheckRegBlobDigest}, verifer: []report.Check{report.ManifestDigest}},
		{name: "config deleted", damage: func(t *testing.T, w *world) {
			w.st.Remove(filepath.Dir(regstoretest.BlobRel(w.dock.ConfigDigest)))
		}, want: []report.Check{regstore.CheckRegRefMissing, regstore.CheckRegLinkDangling}, verifer: []report.Check{report.ConfigMissing}},
		{name: "layer link deleted", damage: func(t *testing.T, w *world) {
			w.st.Remove(regstoretest.LayerLinkRel("lc/docker", w.dock.Layers[0].Digest))
		}, want: []report.Check{regstore.CheckRegRefUnlinked}},
		{name: "index child unlinked", damage: func(t *testing.T, w *world) {
			// garbage-collect marks the child's digest through the index
			// but not its config and layers: it deletes them.
			w.st.Remove(regstoretest.RevisionLinkRel("lc/multi", w.armM))
		}, want: []report.Check{regstore.CheckRegRefUnlinked, regstore.CheckRegBlobOrphan}},
		{name: "tag to a missing revision", damage: func(t *testing.T, w *world) {
			w.st.Link(regstoretest.TagDirRel("lc/docker", "ghost")+"/current/link", digest.FromString("never pushed"))
		}, want: []report.Check{regstore.CheckRegTagDangling}},
		{name: "garbage layer link", damage: func(t *testing.T, w *world) {
			w.st.WriteFile(regstoretest.LayerLinkRel("lc/docker", w.dock.Layers[0].Digest), []byte("garbage\n"))
		}, want: []report.Check{regstore.CheckRegLinkInvalid, regstore.CheckRegRefUnlinked}},
		{name: "empty revision link", damage: func(t *testing.T, w *world) {
			w.st.WriteFile(regstoretest.RevisionLinkRel("library/app", w.oldM), nil)
		}, want: []report.Check{regstore.CheckRegLinkInvalid, regstore.CheckRegBlobOrphan}},
		{name: "link naming another digest", damage: func(t *testing.T, w *world) {
			w.st.Link(regstoretest.LayerLinkRel("lc/docker", w.dock.Layers[0].Digest), w.dock.ConfigDigest)
		}, want: []report.Check{regstore.CheckRegLinkMismatch}},
		{name: "diff_ids lie in a re-pinned config", damage: func(t *testing.T, w *world) {
			liar := *w.dock
			if err := liar.EditConfig(func(m map[string]any) {
				m["rootfs"].(map[string]any)["diff_ids"] = []any{digest.FromString("a lie").String()}
			}); err != nil {
				t.Fatal(err)
			}
			pushImage(w.st, "lc/docker", &liar, "lie")
		}, verifer: []report.Check{report.LayerDiffID}},
		{name: "orphan blob", damage: func(t *testing.T, w *world) {
			w.st.PutBlob([]byte("left behind"))
		}, want: []report.Check{regstore.CheckRegBlobOrphan}},
		{name: "stale upload", damage: func(t *testing.T, w *world) {
			w.st.Upload("lc/docker", "8c3d7e4a-upload", time.Now().Add(-49*time.Hour), make([]byte, 1000))
			w.st.Upload("lc/docker", "fresh-upload", time.Now(), make([]byte, 10))
		}, want: []report.Check{regstore.CheckRegUploadStale}},
		{name: "empty repository", damage: func(t *testing.T, w *world) {
			os.MkdirAll(w.st.Path("repositories/lc/nothing/_layers"), 0o755)
		}, want: []report.Check{regstore.CheckRegRepoEmpty}},
		{name: "repository without _layers", damage: func(t *testing.T, w *world) {
			pushImage(w.st, "lc/nolayers", w.zst, "1")
			w.st.Remove("repositories/lc/nolayers/_layers")
		}, want: []report.Check{regstore.CheckRegRepoInvalid, regstore.CheckRegRefUnlinked}},
		{name: "symlink out of the root", damage: func(t *testing.T, w *world) {
			d := digest.FromString("outside")
			p := w.st.Path(regstoretest.BlobRel(d))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink("/etc/hostname", p); err != nil {
				t.Fatal(err)
			}
		}, want: []report.Check{regstore.CheckRegUnsafePath}},
		{name: "stray file under blobs", damage: func(t *testing.T, w *world) {
			w.st.WriteFile("blobs/sha256/zz/not-a-digest/data", []byte("x"))
		}, want: []report.Check{regstore.CheckRegBlobPath}},
		{name: "huge manifest", opts: store.Options{MaxFileSize: 64 << 10}, damage: func(t *testing.T, w *world) {
			huge := append([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"`), make([]byte, 100<<10)...)
			for i := len(huge) - 100<<10; i < len(huge); i++ {
				huge[i] = ' '
			}
			w.st.PushManifest("lc/docker", append(huge, '}'), "huge")
		}, want: []report.Check{regstore.CheckRegManifestInvalid}},
		{name: "unknown manifest media type", damage: func(t *testing.T, w *world) {
			w.st.PushManifest("lc/docker", []byte(`{"schemaVersion":2,"mediaType":"text/plain"}`), "odd")
		}, want: []report.Check{regstore.CheckRegManifestInvalid}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := cleanWorld(t)
			c.damage(t, w)
			before := storetest.TreeHash(t, w.st.Root)
			opts := c.opts
			opts.Jobs = 2
			rep := audit(t, w.st.Root, opts)
			got := map[report.Check]bool{}
			all := map[report.Check]bool{}
			for _, f := range rep.Findings {
				all[f.Check] = true
				if strings.HasPrefix(string(f.Check), "regstore-") && f.Severity != report.Info {
					got[f.Check] = true
				}
			}
			want := map[report.Check]bool{}
			for _, c := range c.want {
				want[c] = true
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("regstore checks = %v, want %v", keys(got), keys(want))
				for _, f := range rep.Findings {
					t.Logf("%s %s %s: %s (want %s, got %s)", f.Severity, f.Check, f.Subject, f.Message, f.Expected, f.Actual)
				}
			}
			for _, v := range c.verifer {
				if !all[v] {
					t.Errorf("no %s finding; have %v", v, keys(all))
				}
			}
			for _, p := range rep.Problems {
				if c.name != "symlink out of the root" {
					t.Errorf("problem: %s: %s", p.Subject, p.Message)
				}
			}
			if d := diffLines(before, storetest.TreeHash(t, w.st.Root)); d != "" {
				t.Errorf("the audit changed the storage:\n%s", d)
			}
		})
	}
}

func keys(m map[report.Check]bool) []string {
	var out []string
	for k := range m {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}

func diffLines(a, b []string) string {
	if reflect.DeepEqual(a, b) {
		return ""
	}
	return strings.Join(a, "\n") + "\n---\n" + strings.Join(b, "\n")
}

// TestShardsMergeToTheWhole: the shards of a damaged storage, merged, give
// the report one run gives, and every blob is read by exactly one shard.
func TestShardsMergeToTheWhole(t *testing.T) {
	w := cleanWorld(t)
	flip(t, w.st.Path(regstoretest.BlobRel(w.app.Layers[1].Digest)), func(n int) int { return n / 2 })
	w.st.Remove(regstoretest.LayerLinkRel("lc/docker", w.dock.Layers[0].Digest))
	w.st.PutBlob([]byte("left behind"))
	w.st.Upload("lc/zstd", "old", time.Now().Add(-72*time.Hour), []byte("partial"))
	regstore.Now = func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }
	defer func() { regstore.Now = time.Now }()
	norm := func(r *report.Report) string {
		r.Source, r.Shard = "", nil
		r.Normalize()
		data, _ := json.MarshalIndent(r, "", " ")
		return string(data)
	}
	whole := audit(t, w.st.Root, store.Options{Jobs: 2})
	const n = 3
	var parts []*report.Report
	reads := map[string]int{}
	var mu sync.Mutex
	for i := 1; i <= n; i++ {
		opts := store.Options{Jobs: 2, Shard: &report.Shard{Index: i, Count: n}}
		opts.Verify.Progress = func(loc string, _ int64) { mu.Lock(); reads[loc]++; mu.Unlock() }
		parts = append(parts, audit(t, w.st.Root, opts))
	}
	merged, err := report.Merge(parts...)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := norm(whole), norm(merged); a != b {
		t.Errorf("merged shards differ from the whole run:\n--- whole\n%s\n--- merged\n%s", a, b)
	}
	// Manifests are read whole by every shard (the mark set needs them)
	// and hashed in memory; every other blob is read by one shard's pass.
	blobs, _ := filepath.Glob(w.st.Path("blobs/sha256/*/*/data"))
	revs, _ := filepath.Glob(w.st.Path("repositories/*/*/_manifests/revisions/sha256/*/link"))
	manifests := map[string]bool{}
	for _, l := range revs {
		manifests[filepath.Base(filepath.Dir(l))] = true
	}
	if len(reads)+len(manifests) != len(blobs) {
		t.Errorf("%d blobs read by the shards and %d manifests, the storage holds %d blobs", len(reads), len(manifests), len(blobs))
	}
	for loc, k := range reads {
		if k != 1 {
			t.Errorf("%s read %d times by the shards", loc, k)
		}
	}
}

func TestSelectedAudit(t *testing.T) {
	w := cleanWorld(t)
	w.st.PutBlob([]byte("left behind"))
	for _, sel := range []string{"lc/multi:latest", "lc/multi@" + w.idxM.String(), "localhost:5000/lc/multi", w.amd.ConfigDigest.Encoded()[:12]} {
		rep := audit(t, w.st.Root, store.Options{Images: []string{sel}})
		if len(rep.Findings) != 0 || len(rep.Problems) != 0 {
			t.Errorf("%s: findings %v problems %v", sel, rep.Findings, rep.Problems)
		}
		found := false
		for _, im := range rep.Images {
			found = found || im.ConfigDigest == w.amd.ConfigDigest.String()
			if strings.HasPrefix(im.Name, "library/") {
				t.Errorf("%s: unselected image %s in the report", sel, im.Name)
			}
		}
		if !found {
			t.Errorf("%s: the amd64 image is not in the report", sel)
		}
	}
	s := open(t, w.st.Root, store.Options{Images: []string{"lc/multi:nope"}})
	if err := s.Audit(context.Background(), &report.Builder{}); err == nil {
		t.Error("a selection matching nothing audits without an error")
	}
}

func TestDetect(t *testing.T) {
	w := cleanWorld(t)
	if k, err := hoststore.Detect(w.st.Root); err != nil || k != store.Registry {
		t.Errorf("Detect = %q, %v", k, err)
	}
	if regstore.Is(t.TempDir()) {
		t.Error("an empty directory is a registry storage")
	}
}
