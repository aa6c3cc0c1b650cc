# e2e/e2e.mk: the real-daemon end-to-end suite and the store captures.
# Included by the top-level Makefile; see docs/e2e.md. Both targets need root.
#
#   make e2e                    install what is missing (apt-get), run the suite, clean up
#   make e2e E2E_DRIVERS=vfs    only the vfs dockerd (default: overlay2 when the kernel allows it, vfs, and
#                               btrfs and fuse-overlayfs for the host tests when the machine allows them)
#   make capture-stores         regenerate fixtures/testdata/stores/*.tar.gz and their ground truth

GO              ?= go
E2E_TMP         ?= $(or $(TMPDIR),/tmp)
E2E_DRIVERS     ?=
E2E_TEST_FLAGS  ?= -count=1 -timeout 20m
E2E_RUN         ?=

.PHONY: e2e e2e-install capture-stores

e2e-install:
	sh scripts/e2e-install.sh

# The suite runs in a fresh directory that e2e-reap checks afterwards: if the
# test binary died before it could stop its daemons, e2e-reap stops them by
# pid, unmounts what they mounted and fails the target.
e2e: e2e-install
	@dir=$$(mktemp -d "$(E2E_TMP)/lce2e-XXXXXX") || exit 1; \
	echo "e2e: work directory $$dir"; \
	rc=0; \
	LAYERCHECK_E2E_WORKDIR="$$dir" LAYERCHECK_E2E_REQUIRE=1 LAYERCHECK_E2E_DRIVERS="$(E2E_DRIVERS)" \
		$(GO) test -tags e2e $(E2E_TEST_FLAGS) $(if $(E2E_RUN),-run '$(E2E_RUN)') ./e2e/... || rc=$$?; \
	LAYERCHECK_E2E_REQUIRE=1 $(GO) -C deploy/kubernetes test -tags e2e -count=1 -run Promtool ./... || rc=$$?; \
	$(GO) run ./e2e/cmd/e2e-reap "$$dir" || rc=1; \
	exit $$rc

capture-stores: e2e-install
	@dir=$$(mktemp -d "$(E2E_TMP)/lce2e-XXXXXX") || exit 1; \
	rc=0; \
	LAYERCHECK_E2E_WORKDIR="$$dir" $(GO) run ./e2e/cmd/capture-stores -out fixtures/testdata/stores || rc=$$?; \
	$(GO) run ./e2e/cmd/e2e-reap "$$dir" || rc=1; \
	exit $$rc
