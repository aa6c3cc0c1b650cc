package main

import (
	"context"
	"fmt"
	imageref "github.com/layercheck/layercheck/ref"
	"runtime"
	"sync"
	"time"

	"github.com/layercheck/layercheck/registryclient"
	"github.com/layercheck/layercheck/source"
)

type remoteCmd struct {
	Refs     []string `arg:"" optional:"" name:"ref" help:"Image references as Docker writes them: nginx, nginx:1.27, docker.io/library/nginx, ghcr.io/org/app@sha256:…, localhost:5000/app."`
	File     string   `short:"f" help:"Also read references from FILE, one per line; blank lines and # comments are skipped." placeholder:"FILE"`
	Platform []string `help:"Verify only these platforms of multi-platform images (os/arch[/variant]). Repeatable, or comma-separated." sep:","`

	Insecure              bool          `help:"Allow plain HTTP and unverified TLS certificates for every registry (loopback registries are reached over HTTP without it)."`
	Mirror                []string      `help:"Registry mirror for docker.io images, tried before docker.io like a daemon's registry-mirrors (repeatable): https://mirror.example." placeholder:"URL"`
	AllowNondistributable bool          `help:"Fetch foreign and non-distributable layers from the URLs in their descriptors (http and https only); without it they are reported as skipped."`
	Timeout               time.Duration `default:"60s" help:"Give up on a connection that sends nothing for this long (response headers or body); blobs then resume where they stopped."`
	ConnectTimeout        time.Duration `default:"30s" help:"Time allowed to connect and complete the TLS handshake."`
	Retries               int           `default:"5" help:"Retries of a failed request or an interrupted blob transfer (429 honouring Retry-After, 5xx, resets, timeouts)."`
	StreamsPerHost        int           `default:"8" help:"Blob downloads open at once to one host."`
	shardFlag
}

func (c *remoteCmd) Run(g *Globals, env *Env) error {
	sh, err := c.shardFlag.parse()
	if err != nil {
		return usage(err)
	}
	allRefs, err := c.refs()
	if err != nil {
		return usage(err)
	}
	logf := func(string, ...any) {}
	if g.Verbose && !g.Quiet {
		var mu sync.Mutex
		logf = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(env.Stderr, "layercheck: "+format+"\n", args...)
		}
	}
	client, err := registryclient.NewClient(registryclient.Options{
		Insecure:              c.Insecure,
		Mirrors:               c.Mirror,
		AllowNondistributable: c.AllowNondistributable,
		ConnectTimeout:        c.ConnectTimeout,
		IdleTimeout:           c.Timeout,
		Retries:               c.Retries,
		MaxStreamsPerHost:     c.StreamsPerHost,
		MaxManifestSize:       g.MaxManifestSize,
		UserAgent:             "layercheck/" + toolVersion(),
		Logf:                  logf,
	})
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	// Every reference is parsed before anything is fetched: a typo is a
	// usage error, not a network one.
	// The whole list is parsed, so every shard refuses the same typo.
	srcs := make(map[string]*registryclient.Source, len(allRefs))
	for _, r := range allRefs {
		s, err := client.Open(r)
		if err != nil {
			return &usageError{msg: err.Error()}
		}
		srcs[r] = s
	}
	refs := sh.Apply(allRefs)
	// Resolve every reference at once in the background, so the round trips
	// of later references overlap the layers of earlier ones; verifyBatches
	// then verifies them into one report, sharing the client's connections,
	// tokens and per-host limits.
	ctx, cancel := context.WithCancel(env.Ctx)
	defer cancel()
	sem := make(chan struct{}, 4)
	for _, r := range refs {
		go func(s *registryclient.Source) {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				_ = s.Resolve(ctx) // the result is kept for Targets
			case <-ctx.Done():
			}
		}(srcs[r])
	}
	if g.Jobs <= 0 {
		// Network transfers overlap well beyond the CPU count.
		g.Jobs = max(runtime.NumCPU(), 4)
	}
	// One batch: the sources are already open (and resolving), they hold no
	// files, and every reference of a repository shares its layer passes.
	return verifyBatches(env, g, "remote", selection{Platform: c.Platform}, refs, sh, func(ref string, _ *Globals) (source.Source, error) {
		return scopedRemote{Source: srcs[ref], scope: imageref.RepositoryOf(ref)}, nil
	}, len(refs))
}

// scopedRemote is a registry source that tells the verifier which repository
// its blobs live in (verify.BlobScoper): references to one repository share
// their layer passes, so a blob two tags use is fetched once.
type scopedRemote struct {
	*registryclient.Source
	scope string
}

// BlobScope implements verify.BlobScoper.
func (s scopedRemote) BlobScope() string { return s.scope }

// refs gathers the references of the arguments and of -f, once each, in order.
func (c *remoteCmd) refs() ([]string, error) {
	all := append([]string(nil), c.Refs...)
	if c.File != "" {
		more, err := readList(c.File, "reference", false)
		if err != nil {
			return nil, err
		}
		all = append(all, more...)
	}
	out := dedup(all)
	if len(out) == 0 {
		return nil, &usageError{msg: "no image reference: give at least one REF or -f FILE"}
	}
	return out, nil
}
