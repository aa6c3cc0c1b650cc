package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/layercheck/layercheck/verify"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
)

// benchSpec is an overlay2 store with one image of four layers, about
// 64 MiB of file data in files of 64 KiB to 4 MiB, and some small files.
func benchSpec() dockertest.StoreSpec {
	rnd := rand.New(rand.NewSource(42))
	var layers [][]dockertest.Entry
	for l := 0; l < 4; l++ {
		var entries []dockertest.Entry
		dir := fmt.Sprintf("data%d/", l)
		entries = append(entries, dockertest.Dir(dir, 0o755))
		total := 0
		for i := 0; total < 16<<20; i++ {
			size := 64 << 10 << (i % 7) // 64 KiB .. 4 MiB
			data := make([]byte, size)
			rnd.Read(data)
			entries = append(entries, dockertest.Entry{Name: fmt.Sprintf("%sblob%03d", dir, i), Type: tar.TypeReg, Data: data, Mode: 0o644})
			total += size
		}
		for i := 0; i < 200; i++ {
			entries = append(entries, dockertest.Reg(fmt.Sprintf("%ssmall%03d", dir, i), "small file\n", 0o644))
		}
		layers = append(layers, entries)
	}
	return linkedSpec("overlay2", "B", "bench", layers)
}

// linkedSpec is a store of one image (named NAME:1) of the given layers,
// base first, keyed PREFIX0, PREFIX1…, every entry owned by the test's user
// (0:0 as root).
func linkedSpec(driver, prefix, name string, layers [][]dockertest.Entry) dockertest.StoreSpec {
	uid, gid := 0, 0
	if !dockertest.IsRoot() {
		uid, gid = os.Getuid(), os.Getgid()
	}
	spec := dockertest.StoreSpec{Driver: driver}
	var keys []string
	for l, entries := range layers {
		for i := range entries {
			entries[i].UID, entries[i].GID = uid, gid
		}
		key := fmt.Sprintf("%s%d", prefix, l)
		parent := ""
		if l > 0 {
			parent = keys[l-1]
		}
		spec.Layers = append(spec.Layers, dockertest.LayerSpec{Key: key, Parent: parent, Entries: entries})
		keys = append(keys, key)
	}
	spec.Images = []dockertest.ImageSpec{{Key: name, Refs: []string{name + ":1"}, Layers: keys}}
	return spec
}

// BenchmarkAudit audits a ~64 MiB overlay2 store: every file read,
// CRC-64'd, rebuilt into its layer's tar stream and hashed once, headers
// compared with lstat, directories walked. Throughput is of the rebuilt
// tar bytes.
func BenchmarkAudit(b *testing.B) {
	s := dockertest.Build(b, benchSpec())
	var tarBytes int64
	for _, l := range s.Layers {
		tarBytes += int64(len(l.Tar))
	}
	b.SetBytes(tarBytes)
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		auditClean(b, s.Root)
	}
	b.StopTimer()
	// CPU time says more than wall time on a shared machine.
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(tarBytes)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// manyFilesSpec is an overlay2 store of 4 layers of 4,000 files each (512
// bytes to 16 KiB, every 50th 256 KiB; about 160 MiB in all), 100 files a
// directory: the file count of a real image per byte, where the cost per
// file (opens, lstat, the walk) shows next to the hashing.
func manyFilesSpec() dockertest.StoreSpec {
	rnd := rand.New(rand.NewSource(7))
	var layers [][]dockertest.Entry
	for l := 0; l < 4; l++ {
		var entries []dockertest.Entry
		for i := 0; i < 4000; i++ {
			dir := fmt.Sprintf("l%d/d%02d/", l, i/100)
			if i%100 == 0 {
				if i == 0 {
					entries = append(entries, dockertest.Dir(fmt.Sprintf("l%d/", l), 0o755))
				}
				entries = append(entries, dockertest.Dir(dir, 0o755))
			}
			size := 512 << (i % 6)
			if i%50 == 49 {
				size = 256 << 10
			}
			data := make([]byte, size)
			rnd.Read(data)
			entries = append(entries, dockertest.Entry{Name: fmt.Sprintf("%sf%04d", dir, i), Type: tar.TypeReg, Data: data, Mode: 0o644})
		}
		layers = append(layers, entries)
	}
	return linkedSpec("overlay2", "M", "many", layers)
}

// BenchmarkHostVsTar measures, in CPU-seconds, the host audit of a store
// against verify.Pass over the same layers' tars (what `layercheck tar`
// does with a docker save's uncompressed layers), 2 jobs each, the two
// sides taking turns. The goal is host at most 2x tar.
func BenchmarkHostVsTar(b *testing.B) {
	s := dockertest.Build(b, manyFilesSpec())
	var tars [][]byte
	var tarBytes int64
	for _, l := range s.Layers {
		tars = append(tars, l.Tar)
		tarBytes += int64(len(l.Tar))
	}
	tarSide := func() {
		var wg sync.WaitGroup
		next := make(chan []byte, len(tars))
		for _, t := range tars {
			next <- t
		}
		close(next)
		for j := 0; j < 2; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for t := range next {
					if _, err := verify.Pass(context.Background(), bytes.NewReader(t), verify.PassOptions{}); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		wg.Wait()
	}
	hostSide := func() { auditClean(b, s.Root) }
	only := os.Getenv("BENCH_SIDE") // "host" or "tar": profile one side
	tarSide()
	hostSide() // warm the page cache
	b.SetBytes(tarBytes)
	var cpuTar, cpuHost time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if only != "host" {
			c := cpuTime()
			tarSide()
			cpuTar += cpuTime() - c
		}
		if only != "tar" {
			c := cpuTime()
			hostSide()
			cpuHost += cpuTime() - c
		}
	}
	b.StopTimer()
	b.ReportMetric(cpuTar.Seconds()/float64(b.N), "tar-cpu-s/op")
	b.ReportMetric(cpuHost.Seconds()/float64(b.N), "host-cpu-s/op")
	if cpuTar > 0 {
		b.ReportMetric(float64(cpuHost)/float64(cpuTar), "host/tar")
	}
}

// auditClean audits the bench store at root, 2 jobs, and fails unless it is clean.
func auditClean(b *testing.B, root string) {
	st, err := Open(root, Options{Jobs: 2})
	if err != nil {
		b.Fatal(err)
	}
	rb := &report.Builder{}
	if err := st.Audit(context.Background(), rb); err != nil {
		b.Fatal(err)
	}
	if r := rb.Finish("host", root, "bench"); r.Summary.Errors+r.Summary.Warnings > 0 || len(r.Problems) > 0 {
		b.Fatalf("bench store not clean: %+v", r.Summary)
	}
}
