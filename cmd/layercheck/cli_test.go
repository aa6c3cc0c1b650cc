package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
)

// runCLI runs layercheck in-process and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func externalFixtures(t *testing.T) string { return fixtures.External(t) }

func TestChainIDCommand(t *testing.T) {
	out, _, code := runCLI(t, "chainid",
		"sha256:cb42413394c4059335228c137fe884ff3ab8946a014014309676c25e3ac86864",
		"sha256:1c91bf69a08b515a1f9c36893d01bd3123d896b38b082e7c21b4b7cc7023525a")
	want := "sha256:cb42413394c4059335228c137fe884ff3ab8946a014014309676c25e3ac86864\n" +
		"sha256:a3ee2510dcf02c980d7aff635909612006fd1662084d6225e52e769b984abeb5\n"
	if code != 0 || out != want {
		t.Fatalf("chainid = %q (exit %d), want %q", out, code, want)
	}
	if _, errOut, code := runCLI(t, "chainid", "sha256:nothex"); code != ExitUsage || !strings.Contains(errOut, "not a digest") {
		t.Fatalf("bad diffID: exit %d, stderr %q", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"},
		{"tar"},
		{"tar", "--output", "yaml", "x.tar"},
	} {
		if _, _, code := runCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
	out, _, code := runCLI(t, "--help")
	if code != 0 || !strings.Contains(out, "Exit codes:") || !strings.Contains(out, "130") {
		t.Errorf("--help: exit %d, output lacks the exit-code table:\n%s", code, out)
	}
}

func TestChecksMarkdownIsCurrent(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "docs", "checks.md"))
	if err != nil {
		t.Fatal(err)
	}
	if got := checksMarkdown(); got != string(want) {
		t.Fatalf("docs/checks.md is stale: regenerate with `go run ./cmd/layercheck checks --markdown > docs/checks.md`")
	}
}

// TestExternalFixtures runs every docker-save tarball and OCI layout of
// ../shared/fixtures-external with its expected verdict (see its MANIFEST.md).
func TestExternalFixtures(t *testing.T) {
	ext := externalFixtures(t)
	for _, tc := range []struct {
		cmd, path string
		code      int
		checks    []report.Check // error findings that must be present
	}{
		{"tar", "google+go-containerregistry/pkg/v1/tarball/testdata/hello-world-v25.tar", 0, nil},
		{"tar", "google+go-containerregistry/pkg/v1/tarball/testdata/test_image_1.tar", 0, nil},
		{"tar", "google+go-containerregistry/pkg/v1/tarball/testdata/test_image_2.tar", 0, nil},
		{"tar", "google+go-containerregistry/pkg/v1/tarball/testdata/test_load_manifest.tar", 0, nil},
		{"tar", "google+go-containerregistry/pkg/v1/tarball/testdata/test_link.tar", 0, nil},
		{"tar", "google+go-containerregistry/pkg/v1/tarball/testdata/null_manifest.tar", 1, []report.Check{report.ArchiveManifest}},
		{"tar", "google+go-containerregistry/pkg/v1/tarball/testdata/no_manifest.tar", 3, nil},
		{"tar", "google+go-containerregistry/pkg/v1/tarball/testdata/content.tar", 3, nil},
		{"tar", "google+go-containerregistry/pkg/v1/mutate/testdata/source_image.tar", 0, nil},
		{"tar", "google+go-containerregistry/pkg/v1/mutate/testdata/whiteout_image.tar", 0, nil},
		{"tar", "google+go-containerregistry/pkg/v1/mutate/testdata/overwritten_file.tar", 0, nil},
		{"tar", "google+go-containerregistry/pkg/v1/mutate/testdata/whiteout_dir.tar", 0, nil},
		// crane validate passes this one; its config does not hash to its file name.
		{"tar", "google+go-containerregistry/pkg/v1/mutate/testdata/source_image_with_empty_layer_history.tar", 1, []report.Check{report.ConfigDigest}},
		{"tar", "containers+image/docker/archive/fixtures/almostempty.tar", 0, nil},
		{"tar", "moby+moby/integration-cli/testdata/emptyLayer.tar", 3, nil},
		{"tar", "wagoodman+dive/.data/test-docker-image.tar", 0, nil},
		{"tar", "wagoodman+dive/.data/test-kaniko-image.tar", 0, nil},
		{"tar", "wagoodman+dive/.data/test-oci-gzip-image.tar", 0, nil},
		{"tar", "wagoodman+dive/.data/test-oci-zstd-image.tar", 0, nil},
		{"tar", "wagoodman+dive/.data/test-oci-estargz-image.tar", 0, nil},
		{"tar", "wagoodman+dive/.data/test-oci-uncompressed-image.tar", 0, nil},
		{"tar", "anchore+stereoscope/pkg/image/oci/testdata/valid-oci.tar", 0, nil},
		{"layout", "anchore+stereoscope/pkg/image/oci/testdata/valid_oci_dir", 0, nil},
		{"layout", "anchore+stereoscope/pkg/image/oci/testdata/multiplatform_oci_dir", 0, nil},
		{"layout", "anchore+stereoscope/pkg/image/oci/testdata/valid_manifest", 1, []report.Check{report.ManifestDigest}},
		{"layout", "anchore+stereoscope/pkg/image/oci/testdata/no_manifests", 0, nil},
		{"layout", "google+go-containerregistry/pkg/v1/layout/testdata/test_index", 0, nil},
		{"layout", "google+go-containerregistry/pkg/v1/layout/testdata/test_gc_index", 0, nil},
		{"layout", "google+go-containerregistry/pkg/v1/layout/testdata/test_index_one_image", 0, nil},
		{"layout", "google+go-containerregistry/pkg/v1/layout/testdata/test_index_media_type", 0, nil},
		// A descriptor whose blob is absent: a finding (ggcr's validate skips it).
		{"layout", "google+go-containerregistry/pkg/v1/layout/testdata/test_gc_image_unknown_mediatype", 1, []report.Check{report.ManifestMissing}},
		{"layout", "regclient+regclient/testdata/testrepo", 0, nil},
		{"layout", "regclient+regclient/testdata/external", 0, nil},
		// containers/image fixtures are broken on purpose: 33-byte text "layers", a wrong size, absent blobs.
		{"layout", "containers+image/oci/layout/fixtures/delete_image_only_one_image", 1, []report.Check{report.ConfigSize, report.LayerDiffID, report.LayerTar}},
		{"layout", "containers+image/oci/layout/fixtures/delete_image_multiple_images", 1, []report.Check{report.LayerTar}},
		{"layout", "containers+image/oci/layout/fixtures/two_images_manifest", 1, []report.Check{report.ManifestMissing}},
		{"layout", "containers+image/oci/layout/fixtures/name_lookups", 1, []report.Check{report.ManifestMissing}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			out, errOut, code := runCLI(t, tc.cmd, "-o", "json", filepath.Join(ext, tc.path))
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr: %s\nstdout: %s", code, tc.code, errOut, out)
			}
			var rep report.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("stdout is not a JSON report: %v\n%s", err, out)
			}
			if rep.SchemaVersion != report.SchemaVersion {
				t.Errorf("schemaVersion = %q", rep.SchemaVersion)
			}
			have := map[report.Check]bool{}
			for _, f := range rep.Findings {
				if f.Severity == report.Error {
					have[f.Check] = true
				}
			}
			for _, c := range tc.checks {
				if !have[c] {
					t.Errorf("missing finding %s; findings: %+v", c, rep.Findings)
				}
			}
			if tc.code == 0 && rep.Summary.Errors != 0 {
				t.Errorf("clean fixture gave %d errors: %+v", rep.Summary.Errors, rep.Findings)
			}
		})
	}
}

func TestImageSelection(t *testing.T) {
	ext := externalFixtures(t)
	bundle := filepath.Join(ext, "google+go-containerregistry/pkg/v1/tarball/testdata/test_link.tar")
	out, _, code := runCLI(t, "tar", "-o", "json", bundle)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var rep report.Report
	json.Unmarshal([]byte(out), &rep)
	if len(rep.Images) < 2 {
		t.Fatalf("test_link.tar: %d images, want 2", len(rep.Images))
	}
	name := rep.Images[0].Name
	out, _, code = runCLI(t, "tar", "-o", "json", "--image", name, bundle)
	json.Unmarshal([]byte(out), &rep)
	if code != 0 || len(rep.Images) != 1 || rep.Images[0].Name != name {
		t.Fatalf("--image %s: exit %d, images %+v", name, code, rep.Images)
	}
	_, errOut, code := runCLI(t, "tar", "--image", "no-such-image:1", bundle)
	if code != ExitCannotCheck || !strings.Contains(errOut, "no-such-image") {
		t.Fatalf("--image no match: exit %d, stderr %q", code, errOut)
	}
}

func TestQuietAndMissingFile(t *testing.T) {
	_, _, code := runCLI(t, "tar", "-q", filepath.Join(t.TempDir(), "absent.tar"))
	if code != ExitUsage {
		t.Fatalf("absent file: exit %d, want usage (%d)", code, ExitUsage)
	}
	ext := externalFixtures(t)
	out, _, code := runCLI(t, "tar", "-q", filepath.Join(ext, "google+go-containerregistry/pkg/v1/tarball/testdata/test_image_1.tar"))
	if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.HasPrefix(out, "OK") {
		t.Fatalf("-q: exit %d, output %q", code, out)
	}
}

// TestJobsHelp: --help says what -j defaults to, remote's floor included.
func TestJobsHelp(t *testing.T) {
	out, _, _ := runCLI(t, "remote", "--help")
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "for remote, the number of CPUs but at least 4") {
		t.Errorf("remote --help does not say -j's default for remote:\n%s", out)
	}
}
