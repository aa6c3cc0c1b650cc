# layercheck in a FROM-scratch image: the static binary, CA certificates for
# registries, and a non-root user. Build from the repository root:
#
#   docker build -t layercheck --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm layercheck remote ghcr.io/org/app@sha256:…
#   docker run --rm -v "$PWD:/work:ro" layercheck tar /work/image.tar
#
# Tested two ways: e2e/dockerfile_test.go (`make e2e`) builds this file
# unchanged with the legacy builder and no network, from an offline stand-in
# for the golang image, then runs the image; cmd/layercheck/dockerfile_test.go
# (`make test`) runs the builder's `go build` line as written here and checks
# the binary is static, without a Docker daemon.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/layercheck ./cmd/layercheck

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/layercheck /layercheck
# nobody:nogroup by number: scratch has no /etc/passwd.
USER 65534:65534
ENTRYPOINT ["/layercheck"]
