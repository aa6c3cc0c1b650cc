package regstore

import "github.com/layercheck/layercheck/report"

// Check IDs of the registry storage audit. Never rename one.
const (
	CheckRegBlobDigest      report.Check = "regstore-blob-digest"      // blobs/<alg>/<xx>/<hex>/data does not hash to its path
	CheckRegBlobPath        report.Check = "regstore-blob-path"        // an entry under blobs/ that is not <alg>/<xx>/<hex>/data with a valid digest
	CheckRegBlobOrphan      report.Check = "regstore-blob-orphan"      // a blob no manifest revision references: garbage-collect deletes it
	CheckRegLinkInvalid     report.Check = "regstore-link-invalid"     // a link file is empty, garbage, too large or misplaced
	CheckRegLinkMismatch    report.Check = "regstore-link-mismatch"    // a link's digest differs from the digest its directory is named by
	CheckRegLinkDangling    report.Check = "regstore-link-dangling"    // a link names a blob that is not in blobs/
	CheckRegTagDangling     report.Check = "regstore-tag-dangling"     // a tag's current link is missing or names no revision of the repository
	CheckRegManifestInvalid report.Check = "regstore-manifest-invalid" // a manifest revision the registry cannot parse or serve
	CheckRegRefMissing      report.Check = "regstore-ref-missing"      // a manifest references a blob absent from blobs/
	CheckRegRefUnlinked     report.Check = "regstore-ref-unlinked"     // a manifest references a blob the repository does not link (pull: blob unknown)
	CheckRegUploadStale     report.Check = "regstore-upload-stale"     // an upload under _uploads/ started more than a day ago
	CheckRegRepoEmpty       report.Check = "regstore-repo-empty"       // a repository with no manifest revision and no tag
	CheckRegRepoInvalid     report.Check = "regstore-repo-invalid"     // a repository garbage-collect cannot enumerate (no _layers/, invalid name)
	CheckRegUnsafePath      report.Check = "regstore-unsafe-path"      // a symlink leaving the storage root, or a special file where a file belongs
)

func init() {
	report.Register(
		report.CheckInfo{ID: CheckRegBlobDigest, Severity: report.Error, Title: "registry blob data hashes to the digest of its path (sha256, sha512)"},
		report.CheckInfo{ID: CheckRegBlobPath, Severity: report.Warning, Title: "every entry under blobs/ is <alg>/<first two hex>/<hex>/data with a valid digest"},
		report.CheckInfo{ID: CheckRegBlobOrphan, Severity: report.Warning, Title: "registry blob no manifest revision references (what garbage-collect --dry-run lists), with its size"},
		report.CheckInfo{ID: CheckRegLinkInvalid, Severity: report.Error, Title: "registry link files hold exactly one well-formed digest"},
		report.CheckInfo{ID: CheckRegLinkMismatch, Severity: report.Error, Title: "registry link digests equal the digest their directory is named by"},
		report.CheckInfo{ID: CheckRegLinkDangling, Severity: report.Error, Title: "registry links name blobs that exist"},
		report.CheckInfo{ID: CheckRegTagDangling, Severity: report.Error, Title: "every tag's current link names an existing manifest revision of its repository"},
		report.CheckInfo{ID: CheckRegManifestInvalid, Severity: report.Error, Title: "every manifest revision parses with a media type the registry serves"},
		report.CheckInfo{ID: CheckRegRefMissing, Severity: report.Error, Title: "every blob a manifest references (config, layers, index children, subject) exists"},
		report.CheckInfo{ID: CheckRegRefUnlinked, Severity: report.Error, Title: "every blob a manifest references is linked in its repository (else: blob unknown on pull)"},
		report.CheckInfo{ID: CheckRegUploadStale, Severity: report.Warning, Title: "registry upload started more than a day ago, with its size"},
		report.CheckInfo{ID: CheckRegRepoEmpty, Severity: report.Warning, Title: "registry repository with no manifest revision and no tag, with its size"},
		report.CheckInfo{ID: CheckRegRepoInvalid, Severity: report.Warning, Title: "registry repository garbage-collect can enumerate (has _layers/, a valid name)"},
		report.CheckInfo{ID: CheckRegUnsafePath, Severity: report.Error, Title: "no symlink leaves the storage root; no special file where a file belongs"},
	)
}
