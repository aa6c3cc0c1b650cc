package harness

import (
	"context"
	"os"
	"path/filepath"
)

// Skopeo runs skopeo with the Env's private policy (accept anything) and
// registries configuration, so that no system or user file is read.
func (e *Env) Skopeo(ctx context.Context, args ...string) ([]byte, error) {
	dir := e.Path("skopeo")
	policy := filepath.Join(dir, "policy.json")
	if _, err := os.Stat(policy); err != nil {
		if err := os.MkdirAll(filepath.Join(dir, "registries.d"), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`+"\n"), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "registries.conf"), []byte("unqualified-search-registries = []\n"), 0o644); err != nil {
			return nil, err
		}
	}
	argv := append([]string{e.Tools.Skopeo,
		"--policy", policy,
		"--registries.d", filepath.Join(dir, "registries.d"),
		"--tmpdir", e.Path("tmp"),
	}, args...)
	env := []string{
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(dir, "registries.conf"),
		"REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json"),
		"HOME=" + dir,
	}
	return e.Run(ctx, Cmd{Argv: argv, Env: env})
}

// SkopeoCopy runs `skopeo copy src dst` with extra flags before the
// references (for instance "--dest-compress-format", "zstd").
func (e *Env) SkopeoCopy(ctx context.Context, src, dst string, extra ...string) error {
	args := append([]string{"copy", "--quiet"}, extra...)
	_, err := e.Skopeo(ctx, append(args, src, dst)...)
	return err
}
