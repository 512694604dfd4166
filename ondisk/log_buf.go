package ondisk

import (
	"fmt"
	"math/bits"
)

// Buffer log items (struct xfs_buf_log_format): the format of a logged
// buffer, its type (enum xfs_blft) and the dirty bitmap of 128-byte chunks
// that says which regions follow it.

// BufLogFormatHdrSize is offsetof(struct xfs_buf_log_format, blf_data_map).
const BufLogFormatHdrSize = 20

// Log buffer types (enum xfs_blft, xfs_log_format.h).
const (
	BlftUnknown   = 0
	BlftUDquot    = 1
	BlftPDquot    = 2
	BlftGDquot    = 3
	BlftBtree     = 4
	BlftAGF       = 5
	BlftAGFL      = 6
	BlftAGI       = 7
	BlftDino      = 8
	BlftSymlink   = 9
	BlftDirBlock  = 10
	BlftDirData   = 11
	BlftDirFree   = 12
	BlftDirLeaf1  = 13
	BlftDirLeafN  = 14
	BlftDANode    = 15
	BlftAttrLeaf  = 16
	BlftAttrRmt   = 17
	BlftSB        = 18
	BlftRTBitmap  = 19
	BlftRTSummary = 20
)

// Buffer log format flags and geometry (XFS_BLF_*).
const (
	BlfChunk       = 128 // XFS_BLF_CHUNK: bytes per dirty bit
	BlfShift       = 7   // XFS_BLF_SHIFT
	BlfInodeBuf    = 0x1 // XFS_BLF_INODE_BUF
	BlfCancel      = 0x2 // XFS_BLF_CANCEL
	BlfUDquotBuf   = 0x4
	BlfPDquotBuf   = 0x8
	BlfGDquotBuf   = 0x10
	BlftShift      = 11                          // XFS_BLFT_SHIFT
	BlftMask       = ((1 << 5) - 1) << BlftShift // XFS_BLFT_MASK
	BlfDatamapSize = 65536/BlfChunk/32 + 1       // XFS_BLF_DATAMAP_SIZE (17)
)

// BufLogFormat mirrors struct xfs_buf_log_format (host byte order:
// little-endian here). Only the MapSize words of the bitmap are on disk in
// a logged item (xfs_buf_log_format_size).
type BufLogFormat struct {
	Type    uint16   // 0 blf_type: LIBuf
	Size    uint16   // 2 blf_size: regions in the item (1 + data regions)
	Flags   uint16   // 4 blf_flags, with the buffer type in the top 5 bits
	Len     uint16   // 6 blf_len: buffer length in BBs
	Blkno   int64    // 8 blf_blkno: daddr on the data device
	MapSize uint32   // 16 blf_map_size: words of the bitmap
	DataMap []uint32 // 20 blf_data_map[MapSize]
}

// BlfMapSize is the number of bitmap words for a buffer of n bytes.
func BlfMapSize(n int) int {
	chunks := (n + BlfChunk - 1) / BlfChunk
	return (chunks + 31) / 32
}

// DecodeBufLogFormat decodes the format region of a buffer log item.
func DecodeBufLogFormat(b []byte) (*BufLogFormat, error) {
	w := Where{AG: NoAG, Daddr: -1}
	if len(b) < BufLogFormatHdrSize {
		return nil, w.Corrupt("buffer log format", "length", len(b), BufLogFormatHdrSize, "")
	}
	f := &BufLogFormat{
		Type: le.Uint16(b), Size: le.Uint16(b[2:]), Flags: le.Uint16(b[4:]), Len: le.Uint16(b[6:]),
		Blkno: int64(le.Uint64(b[8:])), MapSize: le.Uint32(b[16:]),
	}
	if f.MapSize > BlfDatamapSize {
		return nil, w.Corrupt("buffer log format", "blf_map_size", f.MapSize, nil, fmt.Sprintf("exceeds %d", BlfDatamapSize))
	}
	if need := BufLogFormatHdrSize + 4*int(f.MapSize); len(b) < need {
		return nil, w.Corrupt("buffer log format", "length", len(b), need, "is short for blf_map_size")
	}
	f.DataMap = make([]uint32, f.MapSize)
	for i := range f.DataMap {
		f.DataMap[i] = le.Uint32(b[BufLogFormatHdrSize+4*i:])
	}
	return f, nil
}

// EncodedSize is the logged size of f: 20 + 4*MapSize.
func (f *BufLogFormat) EncodedSize() int { return BufLogFormatHdrSize + 4*int(f.MapSize) }

// Encode writes f into b (EncodedSize bytes).
func (f *BufLogFormat) Encode(b []byte) {
	le.PutUint16(b, f.Type)
	le.PutUint16(b[2:], f.Size)
	le.PutUint16(b[4:], f.Flags)
	le.PutUint16(b[6:], f.Len)
	le.PutUint64(b[8:], uint64(f.Blkno))
	le.PutUint32(b[16:], f.MapSize)
	for i := 0; i < int(f.MapSize); i++ {
		var v uint32
		if i < len(f.DataMap) {
			v = f.DataMap[i]
		}
		le.PutUint32(b[BufLogFormatHdrSize+4*i:], v)
	}
}

// Blft is the buffer type in blf_flags (xfs_blft_from_flags).
func (f *BufLogFormat) Blft() uint16 { return (f.Flags & BlftMask) >> BlftShift }

// SetBlft stores the buffer type (xfs_blft_to_flags).
func (f *BufLogFormat) SetBlft(t uint16) {
	f.Flags = f.Flags&^BlftMask | (t<<BlftShift)&BlftMask
}

// IsDirty reports whether chunk bit is set in the bitmap.
func (f *BufLogFormat) IsDirty(bit int) bool {
	w := bit / 32
	return bit >= 0 && w < len(f.DataMap) && w < int(f.MapSize) && f.DataMap[w]&(1<<(bit%32)) != 0
}

// MarkDirty sets the bits covering bytes first..last (inclusive) of the
// buffer, as xfs_buf_item_log_segment does. It grows DataMap to MapSize
// words if needed and ignores bits past MapSize*32.
func (f *BufLogFormat) MarkDirty(first, last int) {
	if first < 0 || last < first {
		return
	}
	if len(f.DataMap) < int(f.MapSize) {
		f.DataMap = append(f.DataMap, make([]uint32, int(f.MapSize)-len(f.DataMap))...)
	}
	for bit := first >> BlfShift; bit <= last>>BlfShift && bit/32 < len(f.DataMap); bit++ {
		f.DataMap[bit/32] |= 1 << (bit % 32)
	}
}

// DirtyRun is a maximal run of set bits: the data region covering bytes
// [First*128, (First+N)*128) of the buffer.
type DirtyRun struct{ First, N int }

// Runs lists the maximal runs of set bits in ascending order: one logged
// data region each (xfs_buf_item_format_segment, xlog_recover_do_reg_buffer).
func (f *BufLogFormat) Runs() []DirtyRun {
	var runs []DirtyRun
	words := min(len(f.DataMap), int(f.MapSize))
	bit, end := 0, words*32
	for bit < end {
		w := f.DataMap[bit/32] >> (bit % 32)
		if w == 0 {
			bit = (bit/32 + 1) * 32
			continue
		}
		bit += bits.TrailingZeros32(w)
		start := bit
		for bit < end && f.DataMap[bit/32]&(1<<(bit%32)) != 0 {
			bit++
		}
		runs = append(runs, DirtyRun{First: start, N: bit - start})
	}
	return runs
}
