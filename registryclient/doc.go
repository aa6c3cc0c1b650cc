// Package registryclient reads images from OCI distribution registries
// (Docker Hub, ghcr.io, a registry on loopback) as a source.Source, so the
// verifier can check them end to end.
//
// References, credentials and the token handshake come from
// go-containerregistry (name.ParseReference, authn.DefaultKeychain,
// transport.NewWithContext). The HTTP requests for manifests and blobs are
// made here, so that the raw bytes reach the engine unverified and are hashed
// exactly once, by the engine's single pass: a registry that serves wrong or
// short bytes becomes a finding naming the blob, not a client-side error.
//
// The network behaviour is this package's job:
//   - one GET per manifest: Targets resolves the reference and keeps the bytes
//     for the verifier's later read; blobs are lazy (no request before Open);
//   - at most Options.MaxStreamsPerHost blob streams open per host;
//   - retries with exponential backoff on 429 (honouring Retry-After), 5xx,
//     dropped connections and resets; an interrupted blob resumes with a Range
//     request, and restarts only when nothing of it was consumed yet;
//   - connect and idle timeouts;
//   - redirects followed by hand: the registry's Authorization header is never
//     sent to another host (blob storage, a CDN);
//   - HTTPS with the system roots; plain HTTP or an unverified certificate only
//     with Options.Insecure, or for loopback registries (as Docker does);
//   - mirrors for docker.io, tried before the origin like a daemon's
//     registry-mirrors.
//
// Credentials never appear in errors, locations or logs: URLs are redacted
// (user info and query strings, which carry signed-URL tokens), and every
// error leaving the package is scrubbed of the secrets the keychain returned.
//
// Legacy schema 1 manifests are requested (their media types are in the
// Accept list) and left to the verifier; for signed ones, whose digest covers
// the payload without the signatures, this package extracts that payload and
// reports a manifest-digest finding (source.Noter) when it does not hash to
// the Docker-Content-Digest header or the reference's digest.
package registryclient
