package ondisk

import (
	"encoding/binary"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Cksum computes the XFS CRC32c of b as if the 4 bytes at crcOff were zero
// (xfs_start_cksum_safe + xfs_end_cksum): seed ~0, result inverted. The
// result is what is stored little-endian at crcOff.
func Cksum(b []byte, crcOff int) uint32 {
	var zero [4]byte
	c := crc32.Update(0, castagnoli, b[:crcOff])
	c = crc32.Update(c, castagnoli, zero[:])
	c = crc32.Update(c, castagnoli, b[crcOff+4:])
	return c
}

// Crc32c returns the standard CRC32c of b (seed ~0, final inversion), as
// used by the log record checksum over several pieces via crc32.Update.
func Crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// CrcUpdate continues a CRC32c over b.
func CrcUpdate(c uint32, b []byte) uint32 { return crc32.Update(c, castagnoli, b) }

// VerifyCksum reports whether the CRC stored at crcOff matches b.
func VerifyCksum(b []byte, crcOff int) bool {
	return binary.LittleEndian.Uint32(b[crcOff:]) == Cksum(b, crcOff)
}

// UpdateCksum recomputes and stores the CRC at crcOff (xfs_update_cksum).
func UpdateCksum(b []byte, crcOff int) {
	binary.LittleEndian.PutUint32(b[crcOff:], Cksum(b, crcOff))
}

// StoredCksum returns the CRC stored at crcOff.
func StoredCksum(b []byte, crcOff int) uint32 { return binary.LittleEndian.Uint32(b[crcOff:]) }

var (
	be = binary.BigEndian
	le = binary.LittleEndian
)
