// Command sha256floor prints the SHA-256 of each file named on its command
// line, hashing them concurrently (-p at a time) with Go's crypto/sha256 and
// 1 MiB reads. make bench-host times it over the bench image's layer tars as
// the floor of any Go tool that must hash every byte once: layercheck host
// cannot be faster than this on the same machine.
//
// With -gunzip, a file that starts with the gzip magic is also decompressed
// (klauspost/pgzip, as package verify does) and the decompressed stream
// hashed, both in the same read, and the line gives both digests: the floor
// of a registry storage audit, which hashes every stored blob and checks each
// gzip layer's diffID.
package main

import (
	"bufio"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/klauspost/pgzip"
)

func main() {
	p := flag.Int("p", 2, "files hashed at once")
	gunzip := flag.Bool("gunzip", false, "also decompress gzip files and hash the decompressed stream")
	flag.Parse()
	sums := make([]string, flag.NArg())
	sem := make(chan struct{}, max(*p, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := false
	for i, name := range flag.Args() {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			sum, err := hashFile(name, *gunzip)
			if err != nil {
				mu.Lock()
				failed = true
				mu.Unlock()
				fmt.Fprintf(os.Stderr, "sha256floor: %v\n", err)
				return
			}
			sums[i] = sum
		}()
	}
	wg.Wait()
	for i, name := range flag.Args() {
		if sums[i] != "" {
			fmt.Printf("%s  %s\n", sums[i], name)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func hashFile(name string, gunzip bool) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if gunzip {
		br := bufio.NewReaderSize(io.TeeReader(f, h), 1<<20)
		if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
			zr, err := pgzip.NewReader(br)
			if err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
			plain := sha256.New()
			if _, err := io.Copy(plain, zr); err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
			// The stored digest covers every byte, also any after the stream.
			if _, err := io.Copy(io.Discard, br); err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
			return fmt.Sprintf("%x %x", h.Sum(nil), plain.Sum(nil)), nil
		}
		if _, err := io.Copy(io.Discard, br); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return fmt.Sprintf("%x", h.Sum(nil)), nil
	}
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}
