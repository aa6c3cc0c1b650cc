// Package diskcheck holds the pieces the host store audits share to compare
// a tar entry with the file unpacked from it: lstat fields, xattrs read
// without opening the file, tar type and mode names, path cleaning, and
// overlayfs's whiteout and opaque conventions. It reads only; it knows no
// store layout and makes no findings (hoststore/docker and
// hoststore/containerd do).
package diskcheck
