package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
)

// finish compares claims with measurements and writes the report entries.
func (r *run) finish() {
	r.finishImages()
	if n, ok := r.src.(source.Noter); ok {
		r.b.Add(n.Findings()...)
	}
	r.unreferenced()
}

// finishImages evaluates every image met and adds it to the report.
func (r *run) finishImages() {
	r.mergeDuplicates()
	for _, w := range r.images {
		r.evaluate(w)
		img := report.Image{
			Name: w.name, Tags: w.tags, Platform: w.platform, IndexDigest: w.indexDigest,
			ManifestDigest: w.manifestDigest, ManifestMediaType: w.manifestMediaType, ConfigDigest: w.configDigest,
		}
		if !w.artifact {
			img.Layers = r.layerResults(w)
			img.Analysis = r.imageAnalysis(w)
		}
		for i := range w.findings {
			w.findings[i].Subject.Image = w.name
			w.findings[i].Subject.Platform = w.platform
		}
		r.b.Add(w.findings...)
		r.b.AddImage(img)
	}
}

// mergeDuplicates folds an OCI manifest target into the docker-save record of
// the same image (Docker 25+ saves list each image in both manifest.json and
// index.json), so the user sees one image with its manifest digest.
func (r *run) mergeDuplicates() {
	byConfig := map[string]*imageWork{}
	for _, w := range r.images {
		if w.fromRecord && w.configDigest != "" {
			byConfig[w.configDigest] = w
		}
	}
	var out []*imageWork
	for _, w := range r.images {
		rec, ok := byConfig[w.configDigest]
		if w.fromRecord || !ok || w.configDigest == "" || len(w.layers) != len(rec.layers) {
			out = append(out, w)
			continue
		}
		same := true
		for i := range w.layers {
			if w.layers[i].job != rec.layers[i].job {
				same = false
			}
		}
		if !same {
			out = append(out, w)
			continue
		}
		rec.manifestDigest, rec.manifestMediaType = w.manifestDigest, w.manifestMediaType
		if w.platform != "" && !strings.HasPrefix(w.platform, "manifests[") {
			rec.platform = w.platform
		}
		for i := range rec.layers {
			rec.layers[i].ref.Desc = w.layers[i].ref.Desc
		}
		rec.findings = append(rec.findings, w.findings...)
		for _, t := range w.tags {
			if !contains(rec.tags, t) {
				rec.tags = append(rec.tags, t)
			}
		}
	}
	r.images = out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (r *run) layerResults(w *imageWork) []report.Layer {
	var chain []digest.Digest
	if w.diffIDs != nil && len(w.diffIDs) == len(w.layers) {
		chain = ChainIDs(w.diffIDs)
	} else {
		var computed []digest.Digest
		for _, l := range w.layers {
			if l.job == nil || l.job.res == nil {
				computed = nil
				break
			}
			computed = append(computed, l.job.res.DiffID)
		}
		if len(computed) == len(w.layers) {
			chain = ChainIDs(computed)
		}
	}
	out := make([]report.Layer, len(w.layers))
	for i, l := range w.layers {
		rl := report.Layer{Index: i, MediaType: l.ref.Desc.MediaType}
		if chain != nil {
			rl.ChainID = chain[i].String()
		}
		if l.ref.Blob != nil {
			rl.Location = l.ref.Blob.Location()
		}
		if l.job != nil && l.job.res != nil && l.job.err == nil {
			res := l.job.res
			rl.Digest, rl.Size, rl.Compression = res.StoredDigest.String(), res.StoredSize, string(res.Compression)
			if l.job.walkTar {
				rl.DiffID, rl.TarSize, rl.Entries = res.DiffID.String(), res.TarSize, res.Entries
			}
		}
		out[i] = rl
	}
	return out
}

// evaluate turns each layer's measurements into findings.
func (r *run) evaluate(w *imageWork) {
	for i, l := range w.layers {
		if l.job == nil {
			continue
		}
		li := report.LayerIndex(i)
		if w.artifact {
			li = nil
		}
		subj := report.Subject{Digest: l.ref.Desc.Digest.String(), Path: l.ref.Blob.Location()}
		if l.job.err != nil {
			// Could not read it to the end: nothing measured can be trusted.
			s := subj
			s.Image, s.Platform, s.Layer = w.name, w.platform, li
			r.b.Problem(s, "reading layer: %v", l.job.err)
			continue
		}
		if l.job.skipped {
			continue // Options.ReadBlob: another shard reads and reports it
		}
		res := l.job.res
		d := l.ref.Desc
		if d.Digest != "" && res.StoredDigest != "" && d.Digest.Algorithm() == digest.SHA256 && d.Digest != res.StoredDigest {
			w.add(report.LayerDigest, li, subj, "stored bytes do not hash to the digest that references them", d.Digest.String(), res.StoredDigest.String())
		}
		if d.Size > 0 && d.Size != res.StoredSize {
			w.add(report.LayerSize, li, subj, "stored length differs from the descriptor size", fmt.Sprint(d.Size), fmt.Sprint(res.StoredSize))
		}
		if !l.job.walkTar || w.artifact {
			continue
		}
		if want, known := layerCompression(d.MediaType); known && want != res.Compression && !dockerGzipTypeOnTar(d.MediaType, res.Compression) {
			w.add(report.LayerMediaType, li, subj, "the media type declares one compression, the magic bytes show another", fmt.Sprintf("%s (%s)", want, d.MediaType), string(res.Compression))
		} else if !known && d.MediaType != "" && !isForeign(d.MediaType) {
			w.addSev(report.LayerMediaType, report.Warning, li, subj, "unknown layer media type", "a layer media type", d.MediaType)
		}
		decompressOK := res.DecompressErr == nil && res.LimitErr == nil
		switch {
		case res.DecompressErr != nil && res.TarEnd && trailingGarbage(res.DecompressErr):
			w.add(report.LayerTrailing, li, subj, "data after the end of the layer's tar is not a valid compressed stream: "+res.DecompressErr.Error(), "", "")
			decompressOK = true
		case res.DecompressErr != nil:
			w.add(report.LayerDecompress, li, subj, "layer does not decompress: "+res.DecompressErr.Error(), "", "")
		}
		if res.LimitErr != nil {
			w.add(report.LayerLimit, li, subj, res.LimitErr.Error(), "", "")
		}
		if res.TarErr != nil && decompressOK {
			w.add(report.LayerTar, li, subj, "tar stream: "+res.TarErr.Error(), "", "")
		}
		if res.TrailingStored > 0 {
			w.add(report.LayerTrailing, li, subj, fmt.Sprintf("%d bytes follow the end of the compressed stream", res.TrailingStored), "0", fmt.Sprint(res.TrailingStored))
		}
		if res.TrailingTarNonZero && res.TrailingEntry == "stargz.index.json" {
			w.addSev(report.LayerTrailing, report.Info, li, subj, "eStargz layer: its table of contents (stargz.index.json) follows the tar end-of-archive marker", "", "")
		} else if res.TrailingTarNonZero {
			w.add(report.LayerTrailing, li, subj, fmt.Sprintf("%d bytes after the tar end-of-archive marker, not all zero", res.TrailingTar), "", "")
		}
		if w.diffIDs != nil && i < len(w.diffIDs) && decompressOK {
			if want := w.diffIDs[i]; want.Validate() == nil && want != res.DiffID {
				w.add(report.LayerDiffID, li, subj, "uncompressed layer does not hash to the config's diff_id", want.String(), res.DiffID.String())
			}
		}
		if kind := LazyOf(d.Annotations); kind != "" {
			evaluateTOC(w, li, subj, d.Annotations, kind, res.TOC)
		}
		for _, dup := range res.Duplicates {
			s := subj
			s.Entry = dup
			w.add(report.LayerDuplicate, li, s, "path appears more than once in the layer (Docker's layer store refuses such layers)", "", "")
		}
		for _, u := range res.UnsafePaths {
			s := subj
			s.Entry = u
			w.add(report.LayerUnsafePath, li, s, "entry climbs out of the root", "", "")
		}
	}
}

// evaluateTOC turns a lazy-pull layer's TOC check into findings: the
// measured TOC digest against this descriptor's annotation, and what the
// pass found wrong inside the TOC.
func evaluateTOC(w *imageWork, li *int, subj report.Subject, ann map[string]string, kind LazyKind, t *TOCResult) {
	if t == nil || t.Kind != kind {
		w.add(report.LayerTOCUnchecked, li, subj, fmt.Sprintf("%s layer: its TOC was not checked (the source was streamed as a whole, or another descriptor of the blob declares another format)", kind), "", "")
		return
	}
	key := AnnotationEStargzTOCDigest
	if kind == LazyZstdChunked {
		key = AnnotationZstdChunkedChecksum
		if ann[key] == "" {
			key = AnnotationZstdChunkedChecksumOld
		}
	}
	if t.Digest != "" {
		want := digest.Digest(ann[key])
		switch {
		case want.Validate() != nil:
			w.add(report.LayerTOCDigest, li, subj, fmt.Sprintf("the %s annotation is not a valid digest", key), "a digest", ann[key])
		case want != t.Digest:
			w.add(report.LayerTOCDigest, li, subj, fmt.Sprintf("the TOC does not hash to the digest the %s annotation pins: a lazy pull would refuse the layer, or trust another TOC", key), want.String(), t.Digest.String())
		}
	}
	for _, f := range t.Findings {
		s := subj
		s.Entry = f.Entry
		w.add(f.Check, li, s, kind.String()+": "+f.Message, f.Expected, f.Actual)
	}
}

// listUnreferenced finds the stored blobs nothing referenced (only when
// nothing was filtered out) once the walk is done, and queues a pass of each
// one named by its digest: an unreferenced blob is still hashed, as a corrupt
// blob is worth knowing about even when no image uses it. The passes run in
// the pool with the layers; unreferenced reports the result.
func (r *run) listUnreferenced(ctx context.Context) {
	l, ok := r.src.(source.Lister)
	if !ok || r.filtered {
		return
	}
	blobs, err := l.ListBlobs(ctx)
	if err != nil {
		r.listErr = err
		return
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].Location() < blobs[j].Location() })
	for _, b := range blobs {
		if r.referenced[b.Key()] {
			continue
		}
		r.unref = append(r.unref, b)
		if digest.Digest(b.Key()).Validate() == nil {
			r.job(b, false)
		}
	}
}

// unreferenced reports what listUnreferenced found.
func (r *run) unreferenced() {
	if r.listErr != nil {
		r.b.Problem(report.Subject{}, "listing blobs: %v", r.listErr)
		return
	}
	for _, b := range r.unref {
		r.b.Add(report.Finding{Check: report.BlobUnreferenced, Severity: report.SeverityOf(report.BlobUnreferenced), Subject: report.Subject{Path: b.Location()},
			Message: fmt.Sprintf("blob present but referenced by nothing (%d bytes)", b.Size())})
		j := r.lookup(b)
		if j == nil || j.res == nil {
			continue
		}
		if want := digest.Digest(b.Key()); j.res.StoredDigest != want {
			r.b.Add(report.Finding{Check: report.BlobDigest, Severity: report.SeverityOf(report.BlobDigest), Subject: report.Subject{Path: b.Location(), Digest: want.String()},
				Message: "blob does not hash to its name", Expected: want.String(), Actual: j.res.StoredDigest.String()})
		}
	}
}

// schema1 checks a legacy schema 1 manifest: each blobSum is verified, the
// diffIDs are computed, and what cannot be checked without a config is said.
func (r *run) schema1(ctx context.Context, w *imageWork, data []byte, subj report.Subject) {
	var m struct {
		Name     string `json:"name"`
		Tag      string `json:"tag"`
		Arch     string `json:"architecture"`
		FSLayers []struct {
			BlobSum digest.Digest `json:"blobSum"`
		} `json:"fsLayers"`
		History []struct {
			V1Compatibility string `json:"v1Compatibility"`
		} `json:"history"`
		Signatures json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		w.add(report.ManifestParse, nil, subj, "schema 1 manifest does not parse: "+err.Error(), "", "")
		return
	}
	if len(m.FSLayers) != len(m.History) {
		w.add(report.LayerCount, nil, subj, "schema 1 fsLayers and history differ in length", fmt.Sprint(len(m.History)), fmt.Sprint(len(m.FSLayers)))
	}
	if m.Signatures != nil {
		// The digest of a signed schema 1 manifest covers the payload without
		// signatures; the digest finding above compared the served bytes.
		w.findings = dropCheck(w.findings, report.ManifestDigest)
	}
	w.add(report.ManifestSchema1, nil, subj, "legacy schema 1 manifest: layer blobs and their diffIDs are verified; there is no config, so no image ID, diff_ids or chainIDs can be checked against one", "", "")
	if m.Arch != "" {
		w.platform = "linux/" + m.Arch
	}
	// fsLayers are listed top first; throwaway layers repeat the empty tar.
	for i := len(m.FSLayers) - 1; i >= 0; i-- {
		fl := m.FSLayers[i]
		throwaway := false
		if i < len(m.History) {
			var v1 struct {
				Throwaway bool `json:"throwaway"`
			}
			_ = json.Unmarshal([]byte(m.History[i].V1Compatibility), &v1)
			throwaway = v1.Throwaway
		}
		if throwaway {
			continue
		}
		d := source.Ref{Desc: ociDesc("application/vnd.docker.container.image.rootfs.diff+x-gtar", fl.BlobSum)}
		if b, err := r.src.Blob(ctx, d.Desc); err == nil {
			d.Blob = b
		} else {
			d.Missing = fmt.Sprintf("blob %s: %v", fl.BlobSum, err)
		}
		w.layers = append(w.layers, layerWork{ref: d})
	}
	for i := range w.layers {
		if w.layers[i].ref.Blob != nil {
			w.layers[i].job = r.job(w.layers[i].ref.Blob, true)
		} else {
			w.add(report.LayerMissing, report.LayerIndex(i), report.Subject{Digest: w.layers[i].ref.Desc.Digest.String()}, w.layers[i].ref.Missing, "", "")
		}
	}
}

func dropCheck(fs []report.Finding, c report.Check) []report.Finding {
	out := fs[:0]
	for _, f := range fs {
		if f.Check != c {
			out = append(out, f)
		}
	}
	return out
}

// trailingGarbage tells a decompression error caused by bytes after the last
// complete gzip member or zstd frame (a bad next header) from damage inside it.
func trailingGarbage(err error) bool {
	return errors.Is(err, pgzip.ErrHeader) || errors.Is(err, zstd.ErrMagicMismatch)
}
