package ondisk

// The unmount record (struct xfs_unmount_log_format): the op that says the
// log is clean.

// Unmount record constants.
const (
	UnmountLogFormatSize = 8          // sizeof(struct xfs_unmount_log_format)
	UnmountType          = 0x556E     // XLOG_UNMOUNT_TYPE ("Un")
	XfsprogsUnmountTid   = 0xB0C0D0D0 // the tid xfsprogs puts in its unmount records
)

// UnmountLogFormat mirrors struct xfs_unmount_log_format (host order).
type UnmountLogFormat struct {
	Magic uint16 // UnmountType
	Pad1  uint16
	Pad2  uint32
}

// DecodeUnmountLogFormat decodes the payload of an unmount op.
func DecodeUnmountLogFormat(b []byte) (UnmountLogFormat, error) {
	if len(b) < UnmountLogFormatSize {
		return UnmountLogFormat{}, &CorruptError{AG: NoAG, Daddr: -1, Struct: "unmount record", Field: "length", Found: len(b), Want: UnmountLogFormatSize}
	}
	return UnmountLogFormat{Magic: le.Uint16(b), Pad1: le.Uint16(b[2:]), Pad2: le.Uint32(b[4:])}, nil
}

// Encode writes u into the first 8 bytes of b.
func (u UnmountLogFormat) Encode(b []byte) {
	le.PutUint16(b, u.Magic)
	le.PutUint16(b[2:], u.Pad1)
	le.PutUint32(b[4:], u.Pad2)
}
