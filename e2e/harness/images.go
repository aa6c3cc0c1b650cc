package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Image is one image the suite made on a daemon, with the daemon's own answers
// about it.
type Image struct {
	Name     string       // short name: busybox, multistage, rootfs, layers, commit, crafted, cross-<driver>
	Ref      string       // the reference it is known by locally, e.g. lc/busybox:1
	Remote   string       // its registry reference after a push, "" if not pushed
	Pulled   bool         // removed and pulled back from the registry
	Inspect  ImageInspect // docker image inspect, taken after every step
	ChainIDs []string     // chainIDs the layer store holds for RootFS.Layers
	Save     string       // `docker save` of Ref alone
}

// Set is what BuildStandardSet made on one daemon.
type Set struct {
	Docker     *Docker
	Images     []*Image
	Containers map[string]ContainerInspect // "exited", "created", "running"
	SaveAll    string                      // `docker save` of every image of the set
	Work       string                      // directory of build contexts and saves
}

// Image returns the image with a short name, or nil.
func (s *Set) Image(name string) *Image {
	for _, img := range s.Images {
		if img.Name == name {
			return img
		}
	}
	return nil
}

// The container names of a standard set.
const (
	ContainerExited  = "lc-exited"
	ContainerCreated = "lc-created"
	ContainerRunning = "lc-running"
)

func writeFiles(dir string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Dockerfiles of the standard set. The builds need no network: everything
// comes from the context (a static busybox) or from earlier images.
const (
	busyboxDockerfile = `FROM scratch
ADD busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin
LABEL org.layercheck.e2e=busybox
CMD ["sh"]
`
	multistageDockerfile = `FROM lc/busybox:1 AS build
RUN mkdir -p /out/sub && echo built > /out/built.txt && ln -s built.txt /out/link && ln /out/built.txt /out/sub/hard && chmod 4755 /out/built.txt
FROM scratch
COPY --from=build /bin/busybox /bin/busybox
COPY --from=build /out/ /data/
ENV STAGE=final
CMD ["/bin/busybox", "sh"]
`
	// Built on the imported tricky rootfs: a whiteout (rm), a replaced
	// directory (opaque on overlay2, per-file whiteouts on vfs), a hardlink to
	// a file of a lower layer (copied up), an empty layer (true) and layers
	// without a tar (ENV, LABEL).
	layersDockerfile = `FROM lc/rootfs:1
RUN ["/bin/busybox", "rm", "/etc/deleteme"]
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox rm -rf /opq && /bin/busybox mkdir /opq && echo new > /opq/new"]
RUN ["/bin/busybox", "ln", "/data/file", "/data/hardlink-across-layers"]
ENV LAYER=top
RUN ["/bin/busybox", "true"]
LABEL org.layercheck.e2e=layers
`
)

// BuildStandardSet builds the suite's images on d, offline:
//
//   - busybox: FROM scratch, ADD of the static busybox, RUN --install (symlinks), ENV/LABEL/CMD
//   - multistage: a two-stage build copying from the first stage
//   - rootfs: `docker import` of the tricky rootfs tar (WriteRootfs)
//   - layers: built on rootfs with a whiteout, an opaque directory, a hardlink across layers and an empty layer
//   - crafted: `docker load` of a save written by the harness (CraftedImage), sharing its base layer with rootfs
//   - commit: `docker commit` of a container that changed busybox
//
// With reg, every image is pushed to reg under <driver>/<name>:1, then
// multistage and layers are removed and pulled back, so that the data root has
// real distribution metadata and RepoDigests. Three containers stay: one
// exited (the committed one), one created, one running `sleep`. Every image is
// saved alone and all together. Ground truth is read last.
func BuildStandardSet(ctx context.Context, d *Docker, reg *Registry) (*Set, error) {
	e := d.env
	work := filepath.Join(e.Path("work"), "set-"+d.Driver)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	s := &Set{Docker: d, Work: work, Containers: map[string]ContainerInspect{}}
	busybox, err := e.ReadBusybox()
	if err != nil {
		return nil, err
	}
	step := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("%s on dockerd %s: %w", what, d.Driver, err)
		}
		return nil
	}

	// busybox
	bctx := filepath.Join(work, "ctx-busybox")
	if err := writeFiles(bctx, map[string]string{"Dockerfile": busyboxDockerfile}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(bctx, "busybox"), busybox, 0o755); err != nil {
		return nil, err
	}
	if err := step("building busybox", d.Build(ctx, "lc/busybox:1", bctx)); err != nil {
		return nil, err
	}
	s.Images = append(s.Images, &Image{Name: "busybox", Ref: "lc/busybox:1"})

	// multistage
	mctx := filepath.Join(work, "ctx-multistage")
	if err := writeFiles(mctx, map[string]string{"Dockerfile": multistageDockerfile}); err != nil {
		return nil, err
	}
	if err := step("building multistage", d.Build(ctx, "lc/multistage:1", mctx)); err != nil {
		return nil, err
	}
	s.Images = append(s.Images, &Image{Name: "multistage", Ref: "lc/multistage:1"})

	// rootfs: docker import of the tricky tar
	var rootfs bytes.Buffer
	if err := WriteRootfs(&rootfs, busybox); err != nil {
		return nil, err
	}
	rootfsTar := filepath.Join(work, "rootfs.tar")
	if err := os.WriteFile(rootfsTar, rootfs.Bytes(), 0o644); err != nil {
		return nil, err
	}
	_, err = d.CLI(ctx, "import", "--change", `CMD ["/bin/sh"]`, "--change", "ENV PATH=/bin", rootfsTar, "lc/rootfs:1")
	if err := step("importing rootfs", err); err != nil {
		return nil, err
	}
	s.Images = append(s.Images, &Image{Name: "rootfs", Ref: "lc/rootfs:1"})

	// layers
	lctx := filepath.Join(work, "ctx-layers")
	if err := writeFiles(lctx, map[string]string{"Dockerfile": layersDockerfile}); err != nil {
		return nil, err
	}
	if err := step("building layers", d.Build(ctx, "lc/layers:1", lctx)); err != nil {
		return nil, err
	}
	s.Images = append(s.Images, &Image{Name: "layers", Ref: "lc/layers:1"})

	// crafted: docker load
	crafted, err := CraftedImage("lc/crafted:1", busybox)
	if err != nil {
		return nil, err
	}
	var save bytes.Buffer
	if err := WriteDockerSave(&save, []SaveImage{crafted}); err != nil {
		return nil, err
	}
	_, err = d.CLIIn(ctx, "", &save, "load")
	if err := step("loading crafted", err); err != nil {
		return nil, err
	}
	s.Images = append(s.Images, &Image{Name: "crafted", Ref: "lc/crafted:1"})

	// commit: the container stays, exited
	_, err = d.CLI(ctx, "run", "--name", ContainerExited, "--network", "none", "lc/busybox:1",
		"sh", "-c", "echo committed > /committed && rm /bin/ls && mkdir -p /var/empty")
	if err := step("running the container to commit", err); err != nil {
		return nil, err
	}
	_, err = d.CLI(ctx, "commit", "--change", "LABEL org.layercheck.e2e=commit", ContainerExited, "lc/commit:1")
	if err := step("committing", err); err != nil {
		return nil, err
	}
	s.Images = append(s.Images, &Image{Name: "commit", Ref: "lc/commit:1"})

	if reg != nil {
		for _, img := range s.Images {
			remote := reg.Ref(d.Driver + "/" + img.Name + ":1")
			if _, err := d.CLI(ctx, "tag", img.Ref, remote); err != nil {
				return nil, step("tagging "+img.Name, err)
			}
			if _, err := d.CLI(ctx, "push", remote); err != nil {
				return nil, step("pushing "+img.Name, err)
			}
			img.Remote = remote
		}
		// Remove two leaf images completely and pull them back.
		for _, name := range []string{"multistage", "layers"} {
			img := s.Image(name)
			if _, err := d.CLI(ctx, "rmi", img.Ref, img.Remote); err != nil {
				return nil, step("removing "+name, err)
			}
			if _, err := d.CLI(ctx, "pull", img.Remote); err != nil {
				return nil, step("pulling "+name, err)
			}
			if _, err := d.CLI(ctx, "tag", img.Remote, img.Ref); err != nil {
				return nil, step("tagging "+name, err)
			}
			img.Pulled = true
		}
	}

	// Containers: one created, one running; the exited one is above.
	_, err = d.CLI(ctx, "create", "--name", ContainerCreated, "--network", "none", "lc/layers:1", "/bin/busybox", "true")
	if err := step("creating a container", err); err != nil {
		return nil, err
	}
	_, err = d.CLI(ctx, "run", "--detach", "--name", ContainerRunning, "--network", "none", "--stop-timeout", "1", "lc/busybox:1", "sleep", "100000")
	if err := step("starting a container", err); err != nil {
		return nil, err
	}

	// Saves.
	var refs []string
	for _, img := range s.Images {
		img.Save = filepath.Join(work, "save-"+img.Name+".tar")
		if _, err := d.CLI(ctx, "save", "--output", img.Save, img.Ref); err != nil {
			return nil, step("saving "+img.Name, err)
		}
		refs = append(refs, img.Ref)
	}
	s.SaveAll = filepath.Join(work, "save-all.tar")
	if _, err := d.CLI(ctx, append([]string{"save", "--output", s.SaveAll}, refs...)...); err != nil {
		return nil, step("saving all", err)
	}
	return s, s.Refresh(ctx)
}

// AddPulled pulls ref (for instance another daemon's image from the registry)
// into the set's daemon, tags it lc/<name>:1 and records it under name.
func (s *Set) AddPulled(ctx context.Context, name, remote string) error {
	d := s.Docker
	if _, err := d.CLI(ctx, "pull", remote); err != nil {
		return fmt.Errorf("pulling %s into dockerd %s: %w", remote, d.Driver, err)
	}
	img := &Image{Name: name, Ref: "lc/" + name + ":1", Remote: remote, Pulled: true}
	if _, err := d.CLI(ctx, "tag", remote, img.Ref); err != nil {
		return err
	}
	img.Save = filepath.Join(s.Work, "save-"+name+".tar")
	if _, err := d.CLI(ctx, "save", "--output", img.Save, img.Ref); err != nil {
		return err
	}
	s.Images = append(s.Images, img)
	return s.Refresh(ctx)
}

// Refresh reads the ground truth again: image inspect, the layer store's
// chainIDs, container inspect.
func (s *Set) Refresh(ctx context.Context) error {
	d := s.Docker
	db, err := d.LayerDB()
	if err != nil {
		return err
	}
	var errs []error
	for _, img := range s.Images {
		ins, err := d.InspectImage(ctx, img.Ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		img.Inspect = ins
		img.ChainIDs, err = ChainIDs(db, ins.RootFS.Layers)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", img.Ref, err))
		}
	}
	for key, name := range map[string]string{"exited": ContainerExited, "created": ContainerCreated, "running": ContainerRunning} {
		ci, err := d.InspectContainer(ctx, name)
		if err != nil {
			if strings.Contains(err.Error(), "No such") {
				continue
			}
			errs = append(errs, err)
			continue
		}
		s.Containers[key] = ci
	}
	return errors.Join(errs...)
}
