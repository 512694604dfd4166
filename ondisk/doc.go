// Package ondisk owns every XFS on-disk structure xfsfree touches: its
// decode, its encode and its verifier (magic, CRC32c, the self-describing
// uuid/owner/blkno fields), and the geometry derived from the superblock
// (inode numbers, AG and disk addresses, chunk and cluster layout).
//
// Conventions, stated once: every on-disk integer is big-endian unless a
// comment says otherwise (CRCs are stored little-endian, as the kernel's
// xfs_update_cksum does). Field comments name the kernel field they mirror
// in fs/xfs/libxfs/xfs_format.h. A "daddr" is a 512-byte basic block number
// on the data device; an "agbno" a filesystem block within an AG; an
// "fsbno" the AG-encoded block number of the kernel (agno<<agblklog|agbno).
//
// Other packages change headers in place by field name, never by offset:
// the field tables (fields.go and each header's file) give every field's
// offset and size, and LogFields logs the named fields in a transaction.
//
// The package is pure: it does no I/O. Decoders take byte slices and return
// values; encoders write values back into byte slices so that
// Encode(Decode(b)) == b for every block a real filesystem holds.
package ondisk
