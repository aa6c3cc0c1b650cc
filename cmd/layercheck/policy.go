package main

import (
	"github.com/layercheck/layercheck/policy"
)

// policyFlags are the CI policy flags; package policy applies them to the
// finished report before any output is written.
type policyFlags struct {
	RequirePlatforms  []string `help:"Fail unless every listed platform (os/arch[/variant]) is among the verified images of each image name or reference; a platform without variant accepts any variant." sep:"," placeholder:"OS/ARCH[/VARIANT],…"`
	RequireDigest     bool     `help:"Refuse tag-only references: every reference of remote (and of remote reports given to merge) must be pinned by digest (NAME@sha256:…). Archives, layouts and stores are addressed by content and have no references to refuse."`
	MaxLayerSize      byteSize `default:"0" help:"Fail on any layer whose stored or uncompressed size is above this size: bytes, or with a unit (500MB, 2GiB) (0: no limit)." placeholder:"SIZE"`
	AllowedMediaTypes []string `help:"Fail on any manifest or layer media type outside this list (give both the manifest and the layer types you accept). Images and layers that declare no media type (legacy docker save) are not judged." sep:"," placeholder:"TYPE,…"`
	MaxWastedBytes    byteSize `default:"0" help:"Fail on any image whose wasted bytes (files later layers overwrite or delete, measured as dive does) are above this size (bytes, or 500MB, 2GiB); implies --analyze (0: no limit)." placeholder:"SIZE"`
}

func (p *policyFlags) policy() policy.Policy {
	return policy.Policy{
		RequirePlatforms:  p.RequirePlatforms,
		RequireDigest:     p.RequireDigest,
		MaxLayerSize:      int64(p.MaxLayerSize),
		AllowedMediaTypes: p.AllowedMediaTypes,
		MaxWastedBytes:    int64(p.MaxWastedBytes),
	}
}

// policyRefs returns the references a command verified: the names given to
// remote, none for the other commands.
func policyRefs(command string, names []string) []string {
	if command == "remote" {
		return names
	}
	return nil
}
