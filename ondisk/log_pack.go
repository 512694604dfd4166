package ondisk

import "fmt"

// Cycle packing and CRC of a log record (xlog_pack_data, xlog_unpack_data,
// xlog_cksum): the first word of every data BB is replaced by the cycle
// and saved in the record's header blocks; the CRC covers the packed
// header blocks and data.

// cycleSlot returns the offset in hdrs of the saved word for data BB i.
func cycleSlot(i int) int {
	j, k := i/LogCycleDataSize, i%LogCycleDataSize
	if j == 0 {
		return 44 + 4*k
	}
	return j*LogHeaderSize + 4 + 4*k
}

func checkPackArgs(hdrs, data []byte) error {
	n := BTOBB(len(data))
	if need := (n + LogCycleDataSize - 1) / LogCycleDataSize; n > 0 && need*LogHeaderSize > len(hdrs) {
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: "log record", Field: "h_len", Found: len(data),
			Msg: fmt.Sprintf("needs %d header blocks, the record has %d", need, len(hdrs)/LogHeaderSize)}
	}
	if len(hdrs) < LogHeaderSize {
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: "log record header", Field: "length", Found: len(hdrs), Want: LogHeaderSize}
	}
	return nil
}

// LogUnpackData reverses the cycle stamping of a record's data in place
// (xlog_unpack_data): the first word of data BB i is restored from
// h_cycle_data[i], or from extended header i/64 for i >= 64. hdrs holds the
// record's header blocks, data its h_len data bytes as read from disk.
func LogUnpackData(hdrs, data []byte) error {
	if err := checkPackArgs(hdrs, data); err != nil {
		return err
	}
	for i := 0; i*BBSize+4 <= len(data); i++ {
		s := cycleSlot(i)
		copy(data[i*BBSize:i*BBSize+4], hdrs[s:s+4])
	}
	return nil
}

// LogPackData stamps cycle into the first word of every data BB, saving the
// word it replaces (xlog_pack_data), and sets xh_cycle of every extended
// header block in hdrs.
func LogPackData(hdrs, data []byte, cycle uint32) error {
	if err := checkPackArgs(hdrs, data); err != nil {
		return err
	}
	for i := 0; i*BBSize+4 <= len(data); i++ {
		s := cycleSlot(i)
		copy(hdrs[s:s+4], data[i*BBSize:i*BBSize+4])
		be.PutUint32(data[i*BBSize:], cycle)
	}
	for j := 1; (j+1)*LogHeaderSize <= len(hdrs); j++ {
		be.PutUint32(hdrs[j*LogHeaderSize:], cycle)
	}
	return nil
}

// LogNextCycle is the cycle after c, skipping the record header magic,
// which is never a cycle number.
func LogNextCycle(c uint32) uint32 {
	c++
	if c == LogHeaderMagic {
		c++
	}
	return c
}

// LogSplitRecord is xlog_split_iclog: the BBs of the packed record buf
// from byte split on lie past the physical end of the log and are written
// at its start, in the next cycle, so the cycle stamped in the first word
// of each of them is advanced (LogNextCycle).
func LogSplitRecord(buf []byte, split int) {
	for i := split; i+4 <= len(buf); i += BBSize {
		be.PutUint32(buf[i:], LogNextCycle(be.Uint32(buf[i:])))
	}
}

// LogRecCksum computes a record's CRC (xlog_cksum) over the packed on-disk
// bytes: the first recSize bytes of the header with h_crc taken as zero
// (recSize is LogRecSize, or LogRecSizeOther for logs written on i386), the
// first LogRecExtSize bytes of extended headers 1..ceil(len(data)/32K)-1,
// then the data. The result is what h_crc stores.
func LogRecCksum(hdrs, data []byte, recSize int) (uint32, error) {
	if recSize != LogRecSize && recSize != LogRecSizeOther {
		return 0, fmt.Errorf("ondisk: bad log record CRC size %d", recSize)
	}
	xheads := (len(data) + LogHeaderCycleSize - 1) / LogHeaderCycleSize
	if len(hdrs) < LogHeaderSize || (xheads > 1 && len(hdrs) < (xheads-1)*LogHeaderSize+LogRecExtSize) {
		return 0, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log record", Field: "h_len", Found: len(data),
			Msg: fmt.Sprintf("needs %d header blocks, the record has %d", max(xheads, 1), len(hdrs)/LogHeaderSize)}
	}
	var zero [4]byte
	c := CrcUpdate(0, hdrs[:LogRecCrcOff])
	c = CrcUpdate(c, zero[:])
	c = CrcUpdate(c, hdrs[LogRecCrcOff+4:recSize])
	for i := 1; i < xheads; i++ {
		c = CrcUpdate(c, hdrs[i*LogHeaderSize:i*LogHeaderSize+LogRecExtSize])
	}
	return CrcUpdate(c, data), nil
}

// CheckLogRecCRC verifies the stored h_crc of a packed record against both
// header sizes the kernel accepts. It returns the stored and the computed
// (LogRecSize) value and whether they match. A stored 0 never matches: the
// kernel accepts it only while looking for torn writes.
func CheckLogRecCRC(hdrs, data []byte) (stored, computed uint32, ok bool, err error) {
	if len(hdrs) < LogHeaderSize {
		return 0, 0, false, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log record header", Field: "length", Found: len(hdrs), Want: LogHeaderSize}
	}
	stored = le.Uint32(hdrs[LogRecCrcOff:])
	computed, err = LogRecCksum(hdrs, data, LogRecSize)
	if err != nil {
		return stored, 0, false, err
	}
	if stored == computed {
		return stored, computed, true, nil
	}
	other, _ := LogRecCksum(hdrs, data, LogRecSizeOther)
	return stored, computed, stored == other, nil
}

// SetLogRecCRC computes and stores h_crc (LogRecSize variant). Call it last,
// after packing and any wrap increment.
func SetLogRecCRC(hdrs, data []byte) error {
	c, err := LogRecCksum(hdrs, data, LogRecSize)
	if err != nil {
		return err
	}
	le.PutUint32(hdrs[LogRecCrcOff:], c)
	return nil
}
