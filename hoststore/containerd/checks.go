package containerd

import "github.com/layercheck/layercheck/report"

// Check IDs of the containerd store audit. Never rename one.
const (
	CheckBlobDigest        report.Check = "ctrd-blob-digest"        // a content blob does not hash to its file name
	CheckBlobSize          report.Check = "ctrd-blob-size"          // blob file size differs from its meta.db record
	CheckBlobMissing       report.Check = "ctrd-blob-missing"       // a meta.db content record has no blob file
	CheckBlobRecord        report.Check = "ctrd-blob-record"        // an image references a blob its namespace has no record of
	CheckBlobOrphan        report.Check = "ctrd-blob-orphan"        // a blob file no namespace records
	CheckIngestLeftover    report.Check = "ctrd-ingest-leftover"    // an interrupted write under ingest/
	CheckImageTarget       report.Check = "ctrd-image-target"       // an image record's target descriptor is incomplete or invalid
	CheckGCLabel           report.Check = "ctrd-gc-label"           // a gc.ref label does not name the child it should protect
	CheckUncompressedLabel report.Check = "ctrd-uncompressed-label" // containerd.io/uncompressed differs from the computed diffID
	CheckSnapshotMissing   report.Check = "ctrd-snapshot-missing"   // an image's snapshot is absent from meta.db, the snapshotter or the disk
	CheckSnapshotChain     report.Check = "ctrd-snapshot-chain"     // snapshot parents do not follow the chainIDs, or the snapshotter's records disagree
	CheckSnapshotOrphan    report.Check = "ctrd-snapshot-orphan"    // a snapshot directory or snapshotter record nothing in meta.db names
	CheckLeaseDangling     report.Check = "ctrd-lease-dangling"     // a lease names content or a snapshot that does not exist
	CheckUnreferenced      report.Check = "ctrd-unreferenced"       // content or a snapshot nothing references (garbage collection removes it)
	CheckNotPulled         report.Check = "ctrd-not-pulled"         // platforms or layers containerd did not fetch or discarded after unpacking
	CheckNotUnpacked       report.Check = "ctrd-not-unpacked"       // an image that is not unpacked into any snapshotter
	CheckMetadata          report.Check = "ctrd-metadata"           // a meta.db or snapshotter record is malformed

	// Snapshot files against their layers (snapfiles.go).
	CheckSnapshotFileContent   report.Check = "ctrd-snapshot-file-content"   // a regular file's bytes or size differ from the layer's
	CheckSnapshotFileType      report.Check = "ctrd-snapshot-file-type"      // an entry is another type on disk than in the layer (a file replaced by a symlink)
	CheckSnapshotFileAttr      report.Check = "ctrd-snapshot-file-attr"      // mode, owner, link target, device number, hardlink identity or xattrs differ
	CheckSnapshotFileMissing   report.Check = "ctrd-snapshot-file-missing"   // an entry of the layer (or, native, of a lower layer) is not in the snapshot
	CheckSnapshotFileExtra     report.Check = "ctrd-snapshot-file-extra"     // the snapshot holds an entry its layers do not have
	CheckSnapshotFileWhiteout  report.Check = "ctrd-snapshot-file-whiteout"  // a whiteout or opaque marker is missing, undone or added
	CheckSnapshotFileUnchecked report.Check = "ctrd-snapshot-file-unchecked" // a snapshot whose files could not be checked locally (layer blob gone or unreadable)
	CheckSnapshotFileActive    report.Check = "ctrd-snapshot-file-active"    // a container's writable snapshot, with its size (writes are not damage)
)

func init() {
	report.Register(
		report.CheckInfo{ID: CheckBlobDigest, Severity: report.Error, Title: "containerd content blob hashes to its file name"},
		report.CheckInfo{ID: CheckBlobSize, Severity: report.Error, Title: "containerd blob size equals its meta.db content record"},
		report.CheckInfo{ID: CheckBlobMissing, Severity: report.Error, Title: "every containerd content record has its blob file"},
		report.CheckInfo{ID: CheckBlobRecord, Severity: report.Error, Title: "every blob an image references is recorded in the image's namespace"},
		report.CheckInfo{ID: CheckBlobOrphan, Severity: report.Info, Title: "containerd blob file recorded in no namespace (garbage), with its size"},
		report.CheckInfo{ID: CheckIngestLeftover, Severity: report.Info, Title: "interrupted containerd download left under ingest/"},
		report.CheckInfo{ID: CheckImageTarget, Severity: report.Error, Title: "containerd image record has a complete, valid target descriptor"},
		report.CheckInfo{ID: CheckGCLabel, Severity: report.Error, Title: "containerd gc.ref labels name the children they protect"},
		report.CheckInfo{ID: CheckUncompressedLabel, Severity: report.Error, Title: "containerd.io/uncompressed label equals the computed diffID"},
		report.CheckInfo{ID: CheckSnapshotMissing, Severity: report.Error, Title: "image snapshots exist in meta.db, the snapshotter metadata and on disk"},
		report.CheckInfo{ID: CheckSnapshotChain, Severity: report.Error, Title: "snapshot parents follow the image's chainIDs and the snapshotter agrees"},
		report.CheckInfo{ID: CheckSnapshotOrphan, Severity: report.Info, Title: "snapshot directory or snapshotter record that meta.db does not name"},
		report.CheckInfo{ID: CheckLeaseDangling, Severity: report.Warning, Title: "containerd leases name only existing content and snapshots"},
		report.CheckInfo{ID: CheckUnreferenced, Severity: report.Info, Title: "containerd content or snapshot nothing references, with its size"},
		report.CheckInfo{ID: CheckNotPulled, Severity: report.Info, Title: "platforms or layers containerd did not fetch, or discarded after unpacking"},
		report.CheckInfo{ID: CheckNotUnpacked, Severity: report.Info, Title: "containerd image not unpacked into any snapshotter"},
		report.CheckInfo{ID: CheckMetadata, Severity: report.Error, Title: "containerd meta.db and snapshotter records are well formed"},
		report.CheckInfo{ID: CheckSnapshotFileContent, Severity: report.Error, Title: "each regular file of a committed snapshot has its layer's bytes and size"},
		report.CheckInfo{ID: CheckSnapshotFileType, Severity: report.Error, Title: "each entry of a committed snapshot has its layer's type"},
		report.CheckInfo{ID: CheckSnapshotFileAttr, Severity: report.Error, Title: "snapshot entries have their layer's mode, owner, link target, device and xattrs"},
		report.CheckInfo{ID: CheckSnapshotFileMissing, Severity: report.Error, Title: "every entry of a snapshot's layers is in the snapshot"},
		report.CheckInfo{ID: CheckSnapshotFileExtra, Severity: report.Error, Title: "a committed snapshot holds no entry its layers do not have"},
		report.CheckInfo{ID: CheckSnapshotFileWhiteout, Severity: report.Error, Title: "snapshot whiteouts and opaque markers are those of the layer"},
		report.CheckInfo{ID: CheckSnapshotFileUnchecked, Severity: report.Info, Title: "committed snapshot whose files could not be checked against a local layer blob"},
		report.CheckInfo{ID: CheckSnapshotFileActive, Severity: report.Info, Title: "container's writable (active) snapshot, with its size; not compared"},
	)
	// Their findings carry the size in bytes as Actual where it is known.
	report.RegisterOrphan(CheckBlobOrphan, CheckSnapshotOrphan)
}
