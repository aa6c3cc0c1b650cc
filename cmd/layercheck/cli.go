package main

import (
	"runtime"

	"github.com/alecthomas/kong"
)

// CLI is the command line. Each command is a struct with a Run method.
type CLI struct {
	Globals

	Tar        tarCmd           `cmd:"" help:"Verify docker save tarballs (legacy, Docker 25+, containerd store; plain, gzip or zstd) and OCI archives."`
	Layout     layoutCmd        `cmd:"" help:"Verify an OCI image layout directory."`
	Remote     remoteCmd        `cmd:"" help:"Verify images in registries end to end: manifests, configs and every layer, each blob read once."`
	Compare    compareCmd       `cmd:"" help:"Compare an image with its registry source, in one of three explicit forms: compare ARTIFACT REF (a docker save or OCI layout against a registry image); compare host [--root DIR] IMAGE... (host images against their registry sources: tag moved, IDs, diffIDs, chainIDs, layer records; --deep every file); compare store [--root DIR] SOURCE... (registry references, docker saves or layouts against a host's layer store). Exit 0 identical, 1 different, 3 could not compare."`
	Host       hostCmd          `cmd:"" help:"Audit host stores offline and read-only (Docker's classic store, containerd, containers-storage, a registry's storage; the kind recognised from the contents): image and layer records, every layer's exact content on disk, containers, links, orphans and leftovers."`
	Chainid    chainidCmd       `cmd:"" name:"chainid" help:"Print the chainID of each prefix of a list of diffIDs."`
	Checks     checksCmd        `cmd:"" help:"List every check ID with its default severity."`
	Merge      mergeCmd         `cmd:"" help:"Join JSON reports (e.g. of CI shards) into one report; outputs, policies and exit code as if one run had verified everything."`
	Analyze    analyzeCmd       `cmd:"" help:"Verify an archive, layout or registry image and print its layer analysis (files, bytes, ratio, whiteouts, largest files, overwritten and deleted files, dive's wasted bytes and efficiency), all from the one pass."`
	Completion completionCmd    `cmd:"" help:"Print the shell completion script for bash, zsh or fish (source <(layercheck completion bash))."`
	Version    kong.VersionFlag `help:"Print the version and exit."`
}

// Globals are flags every command accepts.
type Globals struct {
	Output     []string `short:"o" help:"Output format, repeatable: table, json, sarif, junit; FORMAT=FILE writes to a file (e.g. -o json=report.json -o sarif=report.sarif). Default: table on stdout." placeholder:"FORMAT[=FILE]"`
	Quiet      bool     `short:"q" help:"Print only the verdict line."`
	Verbose    bool     `short:"v" help:"Also show informational findings in the table."`
	Jobs       int      `short:"j" help:"Layers read at once (default: the number of CPUs; for remote, the number of CPUs but at least 4, as network transfers overlap)."`
	FailOn     string   `enum:"error,warning" default:"error" help:"Lowest finding severity that fails the run (exit 1): error or warning."`
	NoProgress bool     `help:"Never show progress on stderr (it is shown only when stderr is a terminal)."`

	MaxManifestSize int64   `default:"4194304" help:"Largest manifest, index or config read into memory, in bytes; a larger one is a manifest-parse or config-parse finding (index.json, manifest.json: could not check)."`
	MaxTarSize      int64   `default:"0" help:"Stop decompressing a layer past this many bytes, with a layer-limit finding (0: no limit)."`
	MaxRatio        float64 `default:"0" help:"Stop decompressing a layer that grows beyond this ratio over its compressed size, checked once 64 MiB are out, with a layer-limit finding (0: no limit)."`
	MaxLayers       int     `default:"1000" help:"Most layers one image may list; more is a layer-count finding and the image's layers are not read."`
	MaxIndexEntries int     `default:"10000" help:"Most manifests one image index may list; more is a manifest-parse finding and none is fetched."`
	MaxIndexDepth   int     `default:"8" help:"Deepest nesting of image indexes followed; deeper is a manifest-parse finding."`

	policyFlags  // CI policy flags (policy.go)
	analyzeFlags // --analyze (analyze.go)
}

func (g *Globals) jobs() int {
	if g.Jobs > 0 {
		return g.Jobs
	}
	return runtime.NumCPU()
}
