package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
)

// shardInputs writes five archives: four good images, each under its own
// name and in another format, and the flip-layer-byte corruption (error
// findings), so the round trip carries findings and a failing exit code.
func shardInputs(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	formats := []fixtures.Format{fixtures.FormatDockerLegacy, fixtures.FormatDockerOCI, fixtures.FormatDockerContainerd, fixtures.FormatOCIArchive}
	for i, f := range formats {
		img := fixtures.BaseImage()
		img.Name = fmt.Sprintf("example.com/shard%d:1", i)
		b, err := fixtures.Build(img)
		if err != nil {
			t.Fatal(err)
		}
		fx, err := fixtures.NewFixture(f, b)
		if err != nil {
			t.Fatal(err)
		}
		sub := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		p, err := fx.Write(sub)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	bad := fixtures.Corruptions()[0]
	if bad.Name != "flip-layer-byte" {
		t.Fatalf("first corruption is %s, the test expects flip-layer-byte", bad.Name)
	}
	fx, err := bad.Make(fixtures.FormatDockerContainerd)
	if err != nil {
		t.Fatal(err)
	}
	p, err := fx.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	return append(paths, p)
}

// TestShardMergeRoundTrip: for n = 1..3, running every shard i/n and
// merging the JSON reports gives the findings, images, problems, summary
// and exit code of one run over all inputs.
func TestShardMergeRoundTrip(t *testing.T) {
	inputs := shardInputs(t)
	dir := t.TempDir()
	listFile := filepath.Join(dir, "archives.txt")
	// -f list, in another order than the arguments would be, with a comment.
	list := "# archives\n" + strings.Join([]string{inputs[3], inputs[0], inputs[4], inputs[2], inputs[1]}, "\n") + "\n"
	if err := os.WriteFile(listFile, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	singleFile := filepath.Join(dir, "single.json")
	_, errOut, singleCode := runCLI(t, append([]string{"tar", "--no-progress", "-q", "-o", "json=" + singleFile}, inputs...)...)
	single := readReport(t, singleFile)
	if singleCode != ExitFindings || len(single.Images) != 5 || single.Summary.Errors == 0 || single.Shard != nil {
		t.Fatalf("single run: exit %d, %d images, %d errors, shard %v; want 1, 5, some, none\nstderr: %s",
			singleCode, len(single.Images), single.Summary.Errors, single.Shard, errOut)
	}
	for n := 1; n <= 3; n++ {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			var files []string
			covered := 0
			for i := 1; i <= n; i++ {
				f := filepath.Join(dir, fmt.Sprintf("shard-%d-of-%d.json", i, n))
				_, errOut, _ := runCLI(t, "tar", "--no-progress", "-q", "--shard", fmt.Sprintf("%d/%d", i, n), "-f", listFile, "-o", "json="+f)
				rep := readReport(t, f)
				if rep.Shard == nil || *rep.Shard != (report.Shard{Index: i, Count: n, Inputs: 5}) {
					t.Fatalf("shard %d/%d report records %+v\nstderr: %s", i, n, rep.Shard, errOut)
				}
				covered += len(rep.Images)
				files = append(files, f)
			}
			if covered != 5 {
				t.Errorf("the %d shards verified %d images together, want 5 (each input in exactly one shard)", n, covered)
			}
			mergedFile := filepath.Join(dir, fmt.Sprintf("merged-%d.json", n))
			_, errOut, code := runCLI(t, append([]string{"merge", "-q", "-o", "json=" + mergedFile}, files...)...)
			if code != singleCode {
				t.Errorf("merge exit %d, single run %d\nstderr: %s", code, singleCode, errOut)
			}
			if strings.Contains(errOut, "warning") {
				t.Errorf("merge of every shard warns: %s", errOut)
			}
			merged := readReport(t, mergedFile)
			if merged.Shard != nil {
				t.Errorf("merged report still records shard %+v", merged.Shard)
			}
			if !reflect.DeepEqual(merged.Findings, single.Findings) {
				t.Errorf("findings differ\nmerged: %s\nsingle: %s", findingsText(*merged), findingsText(*single))
			}
			if !reflect.DeepEqual(merged.Images, single.Images) {
				t.Errorf("images differ\nmerged: %+v\nsingle: %+v", merged.Images, single.Images)
			}
			if !reflect.DeepEqual(merged.Problems, single.Problems) || merged.Summary != single.Summary {
				t.Errorf("problems/summary differ: merged %+v %+v, single %+v %+v", merged.Problems, merged.Summary, single.Problems, single.Summary)
			}
		})
	}
}

// TestShardSplit pins the assignment: sorted bytewise, every n-th from i.
func TestShardSplit(t *testing.T) {
	names := []string{"e", "a", "d", "b", "c"}
	for _, tc := range []struct {
		spec string
		want []string
	}{
		{"1/1", []string{"a", "b", "c", "d", "e"}},
		{"1/2", []string{"a", "c", "e"}},
		{"2/2", []string{"b", "d"}},
		{"3/3", []string{"c"}},
		{"6/6", nil},
	} {
		sh, err := parseShard(tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		if got := sh.Apply(names); !reflect.DeepEqual(got, tc.want) || sh.Inputs != 5 {
			t.Errorf("%s: %v (inputs %d), want %v (5)", tc.spec, got, sh.Inputs, tc.want)
		}
	}
}

func TestShardUsageErrors(t *testing.T) {
	for _, spec := range []string{"0/3", "4/3", "1/0", "a/b", "3", "-1/2", "1/2/3", "1.5/2", ""} {
		args := []string{"tar", "--shard", spec, sampleTar}
		if spec == "" {
			args = []string{"tar", "--shard=", sampleTar}
		}
		_, errOut, code := runCLI(t, args...)
		if spec == "" {
			// An empty value is no sharding.
			if code != ExitOK {
				t.Errorf("--shard=: exit %d, want 0\nstderr: %s", code, errOut)
			}
			continue
		}
		if code != ExitUsage || !strings.Contains(errOut, "--shard") {
			t.Errorf("--shard %q: exit %d, stderr %q; want %d naming --shard", spec, code, errOut, ExitUsage)
		}
	}
	if _, errOut, code := runCLI(t, "remote", "--shard", "0/2", "localhost:5000/x:1"); code != ExitUsage || !strings.Contains(errOut, "--shard") {
		t.Errorf("remote --shard 0/2: exit %d, stderr %q", code, errOut)
	}
}

// TestMergeMissingShard: joining 2 of 3 shards warns, names the missing
// shard and makes the merged report incomplete (exit 3); a repeated shard
// warns and is joined once; shards of different splits are refused.
func TestMergeMissingShard(t *testing.T) {
	inputs := shardInputs(t)
	dir := t.TempDir()
	var files []string
	for i := 1; i <= 3; i++ {
		f := filepath.Join(dir, fmt.Sprintf("s%d.json", i))
		runCLI(t, append([]string{"tar", "--no-progress", "-q", "--shard", fmt.Sprintf("%d/3", i), "-o", "json=" + f}, inputs[:4]...)...)
		files = append(files, f)
	}
	out, errOut, code := runCLI(t, "merge", "-o", "json", files[0], files[2])
	if code != ExitCannotCheck || !strings.Contains(errOut, "shard 2 of 3 missing") {
		t.Fatalf("merge of shards 1 and 3: exit %d, stderr %q; want %d and a warning naming shard 2", code, errOut, ExitCannotCheck)
	}
	if rep := jsonReport(t, out); rep.Summary.Verdict != report.VerdictIncomplete || len(rep.Problems) != 1 {
		t.Errorf("verdict %s, problems %+v; want incomplete and one problem", rep.Summary.Verdict, rep.Problems)
	}
	_, errOut, code = runCLI(t, "merge", "-q", files[0], files[1], files[2], files[1])
	if code != ExitOK || !strings.Contains(errOut, "shard 2 given more than once") {
		t.Errorf("merge with shard 2 twice: exit %d, stderr %q; want 0 and a warning", code, errOut)
	}
	other := filepath.Join(dir, "other.json")
	runCLI(t, "tar", "--no-progress", "-q", "--shard", "1/2", "-o", "json="+other, inputs[0], inputs[1])
	if _, errOut, code := runCLI(t, "merge", "-q", files[0], other); code != ExitCannotCheck || !strings.Contains(errOut, "different splits") {
		t.Errorf("merge of two splits: exit %d, stderr %q; want %d", code, errOut, ExitCannotCheck)
	}
}

// TestRemoteShardRoundTrip: remote -f refs.txt --shard i/3 and merge give
// the images and findings of one run over every reference.
func TestRemoteShardRoundTrip(t *testing.T) {
	rr := newRemoteRegistry(t)
	var refs []string
	for _, r := range []string{"a:1", "b:1", "c:1", "d:1"} {
		rr.push(t, r)
		refs = append(refs, rr.host+"/"+r)
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "refs.txt")
	if err := os.WriteFile(list, []byte(strings.Join(refs, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	singleFile := filepath.Join(dir, "single.json")
	_, errOut, singleCode := runCLI(t, "remote", "--no-progress", "-q", "-f", list, "-o", "json="+singleFile)
	single := readReport(t, singleFile)
	if singleCode != ExitOK || len(single.Images) != 4 {
		t.Fatalf("single run: exit %d, %d images\nstderr: %s", singleCode, len(single.Images), errOut)
	}
	var files []string
	for i := 1; i <= 3; i++ {
		f := filepath.Join(dir, fmt.Sprintf("s%d.json", i))
		if _, errOut, code := runCLI(t, "remote", "--no-progress", "-q", "-f", list, "--shard", fmt.Sprintf("%d/3", i), "-o", "json="+f); code != ExitOK {
			t.Fatalf("shard %d/3: exit %d\nstderr: %s", i, code, errOut)
		}
		files = append(files, f)
	}
	// 4 references over 3 shards: 2, 1 and 1.
	if n := len(readReport(t, files[0]).Images); n != 2 {
		t.Errorf("shard 1/3 verified %d images, want 2", n)
	}
	mergedFile := filepath.Join(dir, "merged.json")
	_, errOut, code := runCLI(t, append([]string{"merge", "-q", "-o", "json=" + mergedFile}, files...)...)
	merged := readReport(t, mergedFile)
	if code != singleCode || !reflect.DeepEqual(merged.Images, single.Images) || !reflect.DeepEqual(merged.Findings, single.Findings) {
		t.Errorf("merge: exit %d (single %d), images equal %v, findings equal %v\nstderr: %s", code, singleCode,
			reflect.DeepEqual(merged.Images, single.Images), reflect.DeepEqual(merged.Findings, single.Findings), errOut)
	}
}

// TestShardBase: --shard-base 0 takes the I of a Kubernetes completion
// index (0..N-1) as shard I+1; out of range stays a usage error.
func TestShardBase(t *testing.T) {
	for spec, want := range map[string]int{"0/4": 1, "3/4": 4} {
		sh, err := shardFlag{Shard: spec, ShardBase: 0}.parse()
		if err != nil || sh.Index != want || sh.Count != 4 {
			t.Errorf("--shard %s --shard-base 0 = %+v, %v; want index %d", spec, sh, err, want)
		}
	}
	if _, err := (shardFlag{Shard: "4/4", ShardBase: 0}).parse(); err == nil {
		t.Error("--shard 4/4 --shard-base 0 accepted")
	}
}
