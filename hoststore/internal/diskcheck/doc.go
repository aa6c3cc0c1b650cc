// Package diskcheck compares a layer's unpacked files with the layer's tar,
// for every store backend that keeps layers unpacked: Docker's classic store
// and containers-storage (graph driver directories plus a tar-split), and
// containerd's snapshots.
//
// [Check] rebuilds the layer's stream from its tar-split and the directory
// (tarsplit.Assemble, files read in place, never mounted), runs the engine's
// single pass (verify.Pass) over it with an observer that compares every
// header with lstat of the same path (type with the driver's whiteout
// mapping, mode, owner through the layer's ID mapping, size, symlink target,
// hardlink identity, device numbers, xattrs; never mtimes), then walks the
// directory for entries the tar lacks: against the layer's own entries for
// overlay layouts, against a replay of the whole chain's tar-splits for
// full-rootfs layouts (vfs, btrfs, zfs), where every inherited copy is
// compared with the header and, for a regular file, the CRC-64 of the lower
// layer that wrote it (the layer's diffID does not cover the copies its
// containers read). FORMATS.md sections 2.3-2.5 are the reference.
//
// Each layer's tar-split is decoded once per audit: the headers the disk
// observer compares are read in step with the rebuild from tar-split's own
// segments (so a file of the wrong length cannot shift them), and the same
// decode records a full-rootfs layer's replay operations. A layer's merged
// tree is its parent's with its operations applied, built once and shared by
// the audit's layers (the Env's memo, bounded: past the bound a dropped tree
// is rebuilt and its tar-splits decoded again). Backends check full-rootfs
// layers parents first so a layer's own rebuild is the decode its children use.
//
// Each entry costs one lstat: the observer's. The rebuild opens the regular
// file the observer has lstat'ed in its directory, on a bare descriptor
// (O_NOFOLLOW|O_NONBLOCK, and fstat must show the same inode: a device node
// is never opened), lists its xattrs on that descriptor, and the walk for
// extra entries takes the observer's results from the path tree instead of a
// second lstat.
//
// A layer's check runs on three goroutines (stage.go): the observer's stage
// (tar-split decoded, headers read in step, each compared with lstat), the
// rebuild (files opened, read, CRC-64 compared, the stream written) and the
// engine's pass (the stream hashed, its tar walked). The stage hands the
// rebuild batches of records with the file it lstat'ed for each; the xattrs
// the rebuild lists are compared in record order once it is done, so the
// report is the same however the goroutines interleave. One layer of many
// small files, where system calls per file are the cost, so keeps two cores
// busy instead of one.
//
// From a cold page cache the rebuild would wait for the disk at each file,
// one file at a time. The rebuild's first read of each file is made with
// RWF_NOWAIT, which costs nothing more than a plain read; once one finds a
// file not cached, the tar-split is decoded up to 128 records (16 MiB of
// file data) ahead and a goroutine asks the kernel to read the coming files
// (posix_fadvise WILLNEED, after the same lstat-then-open precautions), so
// their pages are arriving when the rebuild gets to them (prefetch.go);
// after 64 files in a row found cached it stops and the probe watches. The
// hint changes nothing in the store and nothing in the report: the store
// conformance suite and the corruption cases audit warm and cold alike.
//
// The pieces containerd's snapshot check shares are exported on their own
// (diskcheck.go): lstat fields, xattrs read without opening the file, tar
// type and mode names, path cleaning, and overlayfs's whiteout and opaque
// conventions.
//
// It is not a store: it knows no metadata format, records nothing and
// decides nothing about diffIDs or size files, which stay with each backend;
// the check IDs its findings carry are the backend's ([Checks]). It also
// holds the small read-only file helpers the backends share (OpenRegular,
// ReadRegular, StatOf, Xattrs, DuSize).
package diskcheck
