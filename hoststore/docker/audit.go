package docker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/layercheck/layercheck/hoststore/internal/diskcheck"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
)

// audit is one run of Store.Audit.
type audit struct {
	s       *Store
	b       *report.Builder
	dr      *os.Root // the data root; every path below is resolved inside it
	drvRoot *os.Root // the graph driver's directory (nil when absent), see rootFor
	drv     driverLayout
	imgRel  string // "image/<driver>"
	maxFile int64
	maxPer  int
	uidOff  int
	gidOff  int
	// env configures the comparison of layer directories with their tars.
	env *diskcheck.Env

	images     map[string]*imageRec // by image ID hex
	layers     map[string]*layerRec // by chainID hex (directory name)
	removing   []string             // cache-ids of *-removing layer directories
	mounts     map[string]*mountRec // by mount name (container ID)
	containers map[string]*containerRec
	bk         *buildkitInfo
	links      map[string]string // overlay link ID by cache-id, read once

	full     bool        // no selection: audit everything
	selected []*imageRec // images to report, sorted by name
	scope    map[*layerRec]bool
}

func newAudit(s *Store, b *report.Builder) (*audit, error) {
	dr, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, fmt.Errorf("opening Docker data root: %w", err)
	}
	a := &audit{
		s: s, b: b, dr: dr, drv: layoutOf(s.driver),
		imgRel:  "image/" + s.driver,
		maxFile: s.opts.MaxFileSize,
		maxPer:  s.opts.MaxFindingsPerCheck,
		images:  map[string]*imageRec{}, layers: map[string]*layerRec{},
		mounts: map[string]*mountRec{}, containers: map[string]*containerRec{},
		links: map[string]string{},
		full:  len(s.opts.Images) == 0,
		scope: map[*layerRec]bool{},
	}
	a.env = &diskcheck.Env{
		Checks: diskcheck.Checks{
			FileCRC: FileCRC, MissingFile: LayerMissingFile, UnsafePath: UnsafePath, TarSplit: HostTarSplit,
			NotReproducible: TarSplitNotReproducible, LayerTar: HostLayerTar, Lstat: LstatMismatch,
			Whiteout: Whiteout, ExtraFile: ExtraFile,
		},
		Layout:     diskcheck.Layout{Overlay: a.drv.overlay, OverlayWhiteouts: a.drv.overlayWhiteouts, FullRoot: a.drv.fullRoot},
		Product:    "Docker",
		MaxPer:     a.maxPer,
		Privileged: diskcheck.SeesTrustedXattrs(),
		XattrOK:    diskcheck.ProcUsable(),
		Problem:    a.problem,
		DriverDir:  a.drv.dirRel,
	}
	if a.maxFile <= 0 {
		a.maxFile = 16 << 20
	}
	if a.maxPer <= 0 {
		a.maxPer = 50
	}
	if r, err := os.OpenRoot(filepath.Join(s.root, filepath.FromSlash(a.drv.dirRel))); err == nil {
		a.drvRoot = r
	}
	a.uidOff, a.gidOff = userns(s.root)
	if !a.env.XattrOK {
		a.problem(report.Subject{}, "/proc/self/fd is not available: xattrs were not compared")
	}
	return a, nil
}

func (a *audit) close() {
	a.dr.Close()
	if a.drvRoot != nil {
		a.drvRoot.Close()
	}
}

func (a *audit) run(ctx context.Context) error {
	a.loadImages()
	a.loadRepositories()
	a.loadLayers()
	a.loadMounts()
	if err := a.selectImages(); err != nil {
		return err
	}
	a.linkLayers()
	a.checkImages()
	if a.full {
		a.loadContainers()
		a.loadBuildKit()
		a.checkMounts()
		a.checkDangling()
	}
	a.checkCacheIDs()
	if err := a.runContent(ctx); err != nil {
		return err
	}
	if a.drv.overlay {
		a.checkOverlay()
	}
	if a.full {
		a.checkOrphans()
		a.checkUnused()
		a.checkDistribution()
		a.checkImageRootLeftovers()
	}
	a.emit()
	return ctx.Err()
}

// finding builds a finding with the check's default severity.
func finding(check report.Check, subj report.Subject, msg string, args ...any) report.Finding {
	return diskcheck.Finding(check, subj, msg, args...)
}

// findingList collects the findings of one image or layer.
type findingList = diskcheck.FindingList

// add records a store-level finding (one that names no image or layer).
func (a *audit) add(f report.Finding) { a.b.Add(f) }

// problem records something that could not be checked.
func (a *audit) problem(subj report.Subject, format string, args ...any) {
	a.b.Problem(subj, format, args...)
}

// with sets expected and actual values.
func with(f report.Finding, want, got string) report.Finding { return diskcheck.With(f, want, got) }

// sev overrides the severity.
func sev(f report.Finding, s report.Severity) report.Finding {
	f.Severity = s
	return f
}

// emit writes the selected images, with their layers and the findings of
// those layers, and the findings of layers no selected image uses.
func (a *audit) emit() {
	reported := map[*layerRec]bool{}
	for _, img := range a.selected {
		ri := report.Image{Name: img.name, Tags: img.refs, Platform: img.platform, ConfigDigest: img.id.String()}
		for _, f := range img.fs.All() {
			f.Subject.Image = img.name
			a.b.Add(f)
		}
		chain := img.chain
		if !img.configOK {
			chain = nil // no layers are known for a config that does not parse
		}
		for i, d := range img.diffIDs[:len(chain)] {
			rl := report.Layer{Index: i, DiffID: d.String(), ChainID: chain[i].String()}
			l := a.layers[chain[i].Encoded()]
			if l != nil {
				reported[l] = true
				rl.Location = l.rel
				if l.cacheID != "" {
					rl.Location = a.drv.layerRoot(l.cacheID)
				}
				if l.res != nil {
					rl.DiffID = l.res.diffID.String()
					rl.Size, rl.TarSize, rl.Entries = l.res.tarSize, l.res.tarSize, l.res.entries
				}
				for _, f := range l.fs.All() {
					f.Subject.Image = img.name
					f.Subject.Layer = report.LayerIndex(i)
					a.b.Add(f)
				}
			}
			ri.Layers = append(ri.Layers, rl)
		}
		if a.s.opts.Analysis != nil && img.configOK {
			ri.Analysis = a.imageAnalysis(chain)
		}
		a.b.AddImage(ri)
	}
	for _, k := range sortedKeys(a.layers) {
		l := a.layers[k]
		if reported[l] || (!a.full && !a.scope[l]) {
			continue
		}
		a.b.Add(l.fs.All()...)
	}
}

// chainIDs returns the chainIDs of diffIDs (empty for none).
func chainIDs(diffIDs []digest.Digest) []digest.Digest {
	if len(diffIDs) == 0 {
		return nil
	}
	return verify.ChainIDs(diffIDs)
}

// imageAnalysis combines the analyses of an image's layers, base first, as
// the verifier does for a docker save of the image. A graph-driver layer is
// stored uncompressed: its stored size is the rebuilt tar's. A layer that
// was not rebuilt, or whose rebuild has no analysis, makes it partial.
func (a *audit) imageAnalysis(chain []digest.Digest) *report.ImageAnalysis {
	ls := make([]verify.AnalyzedLayer, len(chain))
	for i, c := range chain {
		l := a.layers[c.Encoded()]
		if l == nil || l.res == nil || l.analyzer == nil {
			continue
		}
		ls[i] = verify.AnalyzedLayer{Analyzer: l.analyzer, StoredSize: l.res.tarSize, TarSize: l.res.tarSize, Complete: l.analyzed}
	}
	return verify.AnalyzeImage(ls, a.s.opts.Analysis.TopFiles)
}
