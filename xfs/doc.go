// Package xfs is the filesystem handle of xfsfree, usable as a library: it
// opens an XFS filesystem that is not mounted (an image file, a block
// device, a partition of a whole-disk image given by its byte range), reads
// and verifies its superblock, derives the geometry, and ties the device,
// the buffer and inode caches and the log together. It runs the per-AG
// work (in parallel) behind the commands `info`, `scan`, `check` and
// `free`, and fronts log recovery (`recover`).
//
// # Opening
//
// There are three ways in, by what the caller means to do:
//
//   - Open(path, Options{ReadOnly: true}) for reading: Info, Scan, Check,
//     Describe, ReadInode, LogState. It reads and verifies the primary
//     superblock (a v4 filesystem, an unknown incompat feature, NEEDSREPAIR
//     are refused with the reason) and writes nothing, on a clean or a
//     dirty log alike (on a dirty log the on-disk metadata may lag the log:
//     LogState says so, and the reports carry DirtyLogNote).
//   - OpenWrite(path, Options{}) for changing the filesystem (Free): it
//     also finds the log's head and tail and refuses a dirty log
//     (ErrDirtyLog: recover it first) and an external log. Every change is
//     a transaction written to the filesystem's own log; Finish writes the
//     superblock counters and an unmount record, and the log is clean.
//   - Recover(path, RecoverOptions{}) replays a dirty log as the kernel's
//     log recovery does and leaves it clean (DryRun: in memory, writing
//     nothing). It opens and closes the device itself.
//
// Every open refuses a device that is mounted, or held by another xfsfree
// writing to the same bytes. Options.Offset and Options.Size restrict every
// read and write to a byte range (a partition: package partition finds
// them). Options.Buffered uses buffered I/O where O_DIRECT is refused (tmpfs).
// Close the handle when done.
//
// # What each call reads and writes
//
//   - Info: the superblock, every AG's AGI and AGF, the log's head and
//     tail. Scan: every AG's AGI, inode btree and unlinked bucket chains
//     (each orphan's inode core). Check: every AG's headers and btrees
//     (inobt, finobt, bnobt, cntbt, rmapbt), cross-checked. Describe and
//     DescribeOrphans: an inode, its attribute fork and a symlink's blocks.
//     None of these writes.
//   - Free (FreeOptions.DryRun: reads only, plans) frees orphans and empty
//     inode chunks in logged transactions; it checks every AG first
//     (Preflight) and writes nothing if that fails, or if it commits
//     nothing. A real run ends with Finish itself.
//   - Recover writes the replayed metadata, then the superblock counters
//     and an unmount record; on a clean log it writes nothing.
//
// Every metadata block read is verified (magic, CRC, structure); a block
// that does not verify is an error naming the AG, the block and the field
// (an *ondisk.CorruptError, which ProblemOf turns into a Problem).
//
// # Concurrency
//
// The methods of an FS are safe for concurrent use (the caches lock each
// buffer and inode while it is used); the read methods may run side by
// side. A filesystem has one writer: a handle from OpenWrite is one
// writing session; run one Free on it at a time (it works on the AGs in
// parallel itself, up to Options.Workers). Another writer on the same
// bytes (another OpenWrite or Recover, from this process or another
// xfsfree, through the image file or a loop device over it) is refused
// while the session is open. Finish ends the writing session (a real Free
// calls it): the write methods then return ErrNotWritable, and the handle
// is only good for Close.
//
// # Reports
//
// The reports (InfoReport, ScanReport, CheckReport, FreeReport,
// RecoverReport) are plain values shaped for display and for JSON: their
// JSON form is the one xfsfree --json prints inside its document, and
// docs/xfsfree.schema.json documents it (snake_case members, lists never
// null, LSNs as {"cycle", "block"}, modes as octal strings, every error as
// a Problem).
package xfs
