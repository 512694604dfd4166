package ondisk

// Inode-create items (struct xfs_icreate_log): the logical record of a new
// inode chunk, whose cluster buffers recovery initialises.

// IcreateLogSize is sizeof(struct xfs_icreate_log).
const IcreateLogSize = 28

// IcreateLog mirrors struct xfs_icreate_log: type and size in host order,
// the rest big-endian.
type IcreateLog struct {
	Type   uint16 // icl_type: LIIcreate
	Size   uint16 // icl_size: 1
	AG     uint32 // icl_ag
	AGBno  uint32 // icl_agbno: first block of the inode range
	Count  uint32 // icl_count: inodes to initialise
	ISize  uint32 // icl_isize
	Length uint32 // icl_length: blocks
	Gen    uint32 // icl_gen
}

// DecodeIcreateLog decodes an inode-create item region.
func DecodeIcreateLog(b []byte) (*IcreateLog, error) {
	if len(b) < IcreateLogSize {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "icreate log item", Field: "length", Found: len(b), Want: IcreateLogSize}
	}
	return &IcreateLog{Type: le.Uint16(b), Size: le.Uint16(b[2:]), AG: be.Uint32(b[4:]), AGBno: be.Uint32(b[8:]),
		Count: be.Uint32(b[12:]), ISize: be.Uint32(b[16:]), Length: be.Uint32(b[20:]), Gen: be.Uint32(b[24:])}, nil
}
