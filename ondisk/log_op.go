package ondisk

// Op headers (struct xlog_op_header): every piece of a transaction in a
// log record follows one, naming its transaction (tid), its length, its
// client and its flags.

// Log clients (oh_clientid).
const (
	LogClientTransaction = 0x69 // XFS_TRANSACTION
	LogClientLog         = 0xAA // XFS_LOG (unmount records)
)

// Op header flags (oh_flags, XLOG_*_TRANS).
const (
	OpStartTrans    = 0x01 // XLOG_START_TRANS
	OpCommitTrans   = 0x02 // XLOG_COMMIT_TRANS
	OpContinueTrans = 0x04 // XLOG_CONTINUE_TRANS
	OpWasContTrans  = 0x08 // XLOG_WAS_CONT_TRANS
	OpEndTrans      = 0x10 // XLOG_END_TRANS
	OpUnmountTrans  = 0x20 // XLOG_UNMOUNT_TRANS
)

// LogOpHeaderSize is sizeof(struct xlog_op_header).
const LogOpHeaderSize = 12

// LogOpHeader mirrors struct xlog_op_header (12 bytes, big-endian).
type LogOpHeader struct {
	Tid      uint32 // 0 oh_tid
	Len      uint32 // 4 oh_len: bytes of data following the header
	ClientID uint8  // 8 oh_clientid
	Flags    uint8  // 9 oh_flags
	Res2     uint16 // 10 oh_res2
}

// DecodeLogOpHeader decodes an op header from b.
func DecodeLogOpHeader(b []byte) (LogOpHeader, error) {
	if len(b) < LogOpHeaderSize {
		return LogOpHeader{}, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log op header", Field: "length", Found: len(b), Want: LogOpHeaderSize, Msg: "overruns the record"}
	}
	return LogOpHeader{Tid: be.Uint32(b), Len: be.Uint32(b[4:]), ClientID: b[8], Flags: b[9], Res2: be.Uint16(b[10:])}, nil
}

// Encode writes o into the first 12 bytes of b.
func (o LogOpHeader) Encode(b []byte) {
	be.PutUint32(b, o.Tid)
	be.PutUint32(b[4:], o.Len)
	b[8] = o.ClientID
	b[9] = o.Flags
	be.PutUint16(b[10:], o.Res2)
}

// OpFlagsString names the set op flags, e.g. "START|COMMIT".
func OpFlagsString(f uint8) string {
	names := []string{"START", "COMMIT", "CONTINUE", "WAS_CONT", "END", "UNMOUNT", "0x40", "0x80"}
	s := ""
	for i := 0; i < 8; i++ {
		if f&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += names[i]
		}
	}
	if s == "" {
		return "0"
	}
	return s
}
