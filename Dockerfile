# layercheck in a FROM-scratch image: the static binary, CA certificates for
# registries, and a non-root user. Build from the repository root:
#
#   docker build -t layercheck --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm layercheck remote ghcr.io/org/app@sha256:…
#   docker run --rm -v "$PWD:/work:ro" layercheck tar /work/image.tar
#
# cmd/layercheck/dockerfile_test.go runs the builder's `go build` line as
# written here and checks the binary is static, so the build step is tested
# without a Docker daemon.

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
