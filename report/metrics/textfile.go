package metrics

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes the layercheck_* metrics to path in the Prometheus text
// format, atomically: into a temporary file in the same directory, synced,
// made readable by all (node-exporter may run as another user), then
// renamed over path. A reader (node-exporter's textfile collector) sees the
// old file or the new one, never a part. The temporary name starts with a
// dot and does not end in .prom, so the collector never reads it. path
// should end in .prom for the collector to read it.
func (e *Exporter) WriteFile(path string) error {
	text, err := e.Text()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return writeFileAtomic(path, text)
}

func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing metrics to %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("writing metrics to %s: %w", path, err)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is synced; a directory that
	// cannot be opened for it (some filesystems) is not an error.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
