package cstorage

import "github.com/layercheck/layercheck/report"

// Check IDs of the containers-storage audit (FORMATS.md section 7). Never
// rename one: they appear in JSON, SARIF and JUnit output.
const (
	// Layer store (<driver>-layers/layers.json, volatile-layers.json).
	CSLayersJSON      report.Check = "cs-layers-json"      // layers.json parses, every record well formed
	CSLayerDuplicate  report.Check = "cs-layer-duplicate"  // layer IDs and names are unique
	CSLayerParent     report.Check = "cs-layer-parent"     // every parent exists, no cycles
	CSLayerIncomplete report.Check = "cs-layer-incomplete" // a layer flagged incomplete (an interrupted pull or commit)
	CSLayerDir        report.Check = "cs-layer-dir"        // the layer's driver directory exists
	CSLayerTOC        report.Check = "cs-layer-toc"        // a partial pull recorded with a toc-digest and no diff-digest (info)

	// Exact content (tar-split + driver files).
	CSTarSplit                report.Check = "cs-tarsplit"                  // <id>.tar-split.gz present, decodes, no duplicate path
	CSTarSplitNotReproducible report.Check = "cs-tarsplit-not-reproducible" // entries tar-split cannot rebuild (benign)
	CSLayerDiffID             report.Check = "cs-layer-diffid"              // the rebuilt stream hashes to diff-digest
	CSLayerDiffSize           report.Check = "cs-layer-diffsize"            // the rebuilt stream is diff-size bytes long
	CSLayerTar                report.Check = "cs-layer-tar"                 // the rebuilt stream is a readable tar
	CSFileCRC                 report.Check = "cs-file-crc"                  // a file's CRC-64 and length (names the file)
	CSLayerMissingFile        report.Check = "cs-layer-missing-file"        // a tar entry absent from the layer directory
	CSUnsafePath              report.Check = "cs-unsafe-path"               // a name or symlink leading out of the layer
	CSLstatMismatch           report.Check = "cs-lstat-mismatch"            // header vs lstat of the same path
	CSWhiteout                report.Check = "cs-whiteout"                  // whiteouts and opaque markers vs the tar
	CSExtraFile               report.Check = "cs-extra-file"                // an entry on disk the tar lacks

	// Image store (<driver>-images/images.json and big data).
	CSImagesJSON    report.Check = "cs-images-json"    // images.json parses, every record well formed
	CSImageLayer    report.Check = "cs-image-layer"    // the top layer exists and its chain resolves
	CSImageBigData  report.Check = "cs-image-bigdata"  // every big-data item exists with its recorded size and digest
	CSImageDigest   report.Check = "cs-image-digest"   // the image's digest is one of its manifests'
	CSImageConfig   report.Check = "cs-image-config"   // the config hashes to the image ID; diff_ids equal the chain's diff-digests
	CSImageManifest report.Check = "cs-image-manifest" // the manifest parses and lists as many layers as the chain has
	CSImageBlob     report.Check = "cs-image-blob"     // manifest layer digests vs the layers' compressed-diff-digest (info)
	CSImageNames    report.Check = "cs-image-names"    // image names are unique

	// Containers (<driver>-containers/containers.json).
	CSContainersJSON report.Check = "cs-containers-json" // containers.json parses
	CSContainer      report.Check = "cs-container"       // a container's layer and image exist

	// overlay driver.
	CSOverlayLink  report.Check = "cs-overlay-link"  // link file and l/ symlink agree; no l/ symlink points nowhere
	CSOverlayLower report.Check = "cs-overlay-lower" // the lower file lists the parent chain's links

	// Leftovers.
	CSOrphanDir      report.Check = "cs-orphan-dir"      // a driver or big-data directory no record names (size)
	CSOrphanTarSplit report.Check = "cs-orphan-tarsplit" // a tar-split of no layer (size)
)

func init() {
	report.Register(
		report.CheckInfo{ID: CSLayersJSON, Severity: report.Error, Title: "containers-storage layers.json parses and every record is well formed"},
		report.CheckInfo{ID: CSLayerDuplicate, Severity: report.Error, Title: "containers-storage layer IDs and names are unique"},
		report.CheckInfo{ID: CSLayerParent, Severity: report.Error, Title: "every containers-storage layer's parent exists, without cycles"},
		report.CheckInfo{ID: CSLayerIncomplete, Severity: report.Warning, Title: "containers-storage layer flagged incomplete (deleted at the next write)"},
		report.CheckInfo{ID: CSLayerDir, Severity: report.Error, Title: "every containers-storage layer has its driver directory"},
		report.CheckInfo{ID: CSLayerTOC, Severity: report.Info, Title: "containers-storage layer recorded by toc-digest only (partial pull): no diffID to check"},
		report.CheckInfo{ID: CSTarSplit, Severity: report.Error, Title: "containers-storage tar-split present, decodes, no duplicate path"},
		report.CheckInfo{ID: CSTarSplitNotReproducible, Severity: report.Info, Title: "containers-storage tar-split entries that cannot be rebuilt (benign)"},
		report.CheckInfo{ID: CSLayerDiffID, Severity: report.Error, Title: "containers-storage layer rebuilt from tar-split hashes to diff-digest"},
		report.CheckInfo{ID: CSLayerDiffSize, Severity: report.Error, Title: "containers-storage layer rebuilt from tar-split is diff-size bytes long"},
		report.CheckInfo{ID: CSLayerTar, Severity: report.Error, Title: "containers-storage rebuilt layer is a readable tar"},
		report.CheckInfo{ID: CSFileCRC, Severity: report.Error, Title: "containers-storage layer file matches the CRC-64 and length tar-split records"},
		report.CheckInfo{ID: CSLayerMissingFile, Severity: report.Error, Title: "every tar entry of a containers-storage layer is in its directory"},
		report.CheckInfo{ID: CSUnsafePath, Severity: report.Error, Title: "no containers-storage tar-split name or symlink leads out of the layer"},
		report.CheckInfo{ID: CSLstatMismatch, Severity: report.Error, Title: "containers-storage layer files match their tar headers (type, mode, owner, size, link, device, xattrs)"},
		report.CheckInfo{ID: CSWhiteout, Severity: report.Error, Title: "containers-storage whiteouts and opaque markers match the layer's tar"},
		report.CheckInfo{ID: CSExtraFile, Severity: report.Error, Title: "no entry in a containers-storage layer directory that its tar lacks"},
		report.CheckInfo{ID: CSImagesJSON, Severity: report.Error, Title: "containers-storage images.json parses and every record is well formed"},
		report.CheckInfo{ID: CSImageLayer, Severity: report.Error, Title: "every containers-storage image's top layer exists and its chain resolves"},
		report.CheckInfo{ID: CSImageBigData, Severity: report.Error, Title: "every containers-storage image big-data item exists with its recorded size and digest"},
		report.CheckInfo{ID: CSImageDigest, Severity: report.Error, Title: "a containers-storage image's digest is the digest of one of its manifests"},
		report.CheckInfo{ID: CSImageConfig, Severity: report.Error, Title: "a containers-storage image's config hashes to its ID and its diff_ids equal the chain's diff-digests"},
		report.CheckInfo{ID: CSImageManifest, Severity: report.Error, Title: "a containers-storage image's manifest parses and lists the chain's layers"},
		report.CheckInfo{ID: CSImageBlob, Severity: report.Info, Title: "containers-storage layer stored from another blob than the image's manifest names (shared layer)"},
		report.CheckInfo{ID: CSImageNames, Severity: report.Error, Title: "containers-storage image names are unique"},
		report.CheckInfo{ID: CSContainersJSON, Severity: report.Error, Title: "containers-storage containers.json parses"},
		report.CheckInfo{ID: CSContainer, Severity: report.Error, Title: "every containers-storage container's layer and image exist"},
		report.CheckInfo{ID: CSOverlayLink, Severity: report.Error, Title: "containers-storage overlay link files and l/ symlinks agree"},
		report.CheckInfo{ID: CSOverlayLower, Severity: report.Error, Title: "containers-storage overlay lower files list the parent chain's links"},
		report.CheckInfo{ID: CSOrphanDir, Severity: report.Warning, Title: "containers-storage directory no record names (leftover), with its size"},
		report.CheckInfo{ID: CSOrphanTarSplit, Severity: report.Warning, Title: "containers-storage tar-split of no layer (leftover), with its size"},
	)
}
