// Package ocilayout reads an OCI image layout directory (oci-layout,
// index.json, blobs/<alg>/<encoded>) as a source.Source.
//
// It lists one Target per descriptor of index.json and hands out blobs by
// digest; it verifies nothing (package verify does). Structural problems of
// the layout itself (a missing or invalid oci-layout file, an index.json that
// does not parse) are reported as findings through source.Noter, not as
// errors: an error means the layout could not be read at all.
//
// The layout is only ever read: files are opened read-only, digests are
// validated before they become paths, and symlinks leaving the layout are not
// followed.
package ocilayout
