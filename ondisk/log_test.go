package ondisk

import (
	"bytes"
	"math/rand"
	"testing"
)

// synthRecord builds a packed record with nData data bytes (a multiple of
// 512) and hblks header blocks, stamped with cycle, CRC set.
func synthRecord(t testing.TB, nData, hblks int, cycle uint32, seed int64) (hdrs, data, plain []byte) {
	r := rand.New(rand.NewSource(seed))
	plain = make([]byte, nData)
	r.Read(plain)
	data = append([]byte(nil), plain...)
	hdrs = make([]byte, hblks*LogHeaderSize)
	h := &LogRecHeader{Magic: LogHeaderMagic, Cycle: cycle, Version: LogVersion2, Len: uint32(nData),
		LSN: MakeLSN(cycle, 10), TailLSN: MakeLSN(cycle, 2), NumLogOps: 1, Fmt: LogFmtLinuxLE,
		Size: uint32(max(hblks*LogHeaderCycleSize, LogBigRecordBSize))}
	h.Encode(hdrs)
	if err := LogPackData(hdrs, data, cycle); err != nil {
		t.Fatal(err)
	}
	if err := SetLogRecCRC(hdrs, data); err != nil {
		t.Fatal(err)
	}
	return hdrs, data, plain
}

func TestLogPackUnpackCRC(t *testing.T) {
	for _, c := range []struct{ nData, hblks int }{{512, 1}, {32768, 1}, {32768 + 512, 2}, {256 * 1024, 8}} {
		hdrs, data, plain := synthRecord(t, c.nData, c.hblks, 7, int64(c.nData))
		for i := 0; i < len(data); i += BBSize {
			if LogCycle(data[i:]) != 7 {
				t.Fatalf("BB %d not stamped", i/BBSize)
			}
		}
		for j := 1; j < c.hblks; j++ {
			if be.Uint32(hdrs[j*LogHeaderSize:]) != 7 {
				t.Errorf("xh_cycle of header %d not set", j)
			}
		}
		stored, computed, ok, err := CheckLogRecCRC(hdrs, data)
		if err != nil || !ok || stored != computed || stored == 0 {
			t.Fatalf("%d bytes: CRC stored %#x computed %#x ok %v err %v", c.nData, stored, computed, ok, err)
		}
		// The CRC covers the packed data, and bytes of the reserved area
		// past XLOG_REC_SIZE do not count.
		hdrs[400] ^= 1
		if _, _, ok, _ := CheckLogRecCRC(hdrs, data); !ok {
			t.Errorf("h_reserved changed the CRC")
		}
		data[len(data)-1] ^= 1
		if _, _, ok, _ := CheckLogRecCRC(hdrs, data); ok {
			t.Errorf("a flipped data byte kept the CRC")
		}
		data[len(data)-1] ^= 1
		if err := LogUnpackData(hdrs, data); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, plain) {
			t.Errorf("%d bytes: unpack did not restore the data", c.nData)
		}
	}
	// Too few header blocks for the data: an error, not a panic.
	hdrs, data, _ := synthRecord(t, 64*1024, 2, 1, 1)
	if err := LogUnpackData(hdrs[:LogHeaderSize], data); err == nil {
		t.Error("unpack with a missing extended header succeeded")
	}
	if _, err := LogRecCksum(hdrs[:LogHeaderSize], data, LogRecSize); err == nil {
		t.Error("CRC with a missing extended header succeeded")
	}
}

func TestLogRecCRCOtherSize(t *testing.T) {
	hdrs, data, _ := synthRecord(t, 1024, 1, 3, 9)
	c, err := LogRecCksum(hdrs, data, LogRecSizeOther)
	if err != nil {
		t.Fatal(err)
	}
	le.PutUint32(hdrs[LogRecCrcOff:], c)
	if _, _, ok, _ := CheckLogRecCRC(hdrs, data); !ok {
		t.Error("the i386 header size is not accepted")
	}
}

func TestLogRecHeaderRoundTrip(t *testing.T) {
	hdrs, _, _ := synthRecord(t, 2048, 1, 5, 3)
	h, err := DecodeLogRecHeader(hdrs)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, LogHeaderSize)
	h.Encode(b)
	if !bytes.Equal(b, hdrs) {
		t.Error("encode(decode(header)) differs")
	}
	if err := h.Verify(true, LogBigRecordBSize); err != nil {
		t.Error(err)
	}
	if h.DataBBs() != 4 || h.HBlks(true) != 1 || h.LSN.Cycle() != 5 || h.LSN.Block() != 10 {
		t.Errorf("header %+v", h)
	}
	bad := *h
	bad.Version = 3
	if bad.Verify(true, LogBigRecordBSize) == nil {
		t.Error("version 3 accepted")
	}
	bad = *h
	bad.Len = LogBigRecordBSize + 512
	if bad.Verify(true, LogBigRecordBSize) == nil {
		t.Error("h_len > h_size accepted")
	}
	if LogHBlks(65536, 2, true) != 2 || LogHBlks(65536, 1, true) != 1 || LogHBlks(262144, 2, true) != 8 || LogHBlks(262144, 2, false) != 1 {
		t.Error("LogHBlks")
	}
}

func TestLSN(t *testing.T) {
	l := MakeLSN(3, 4096)
	if l.Cycle() != 3 || l.Block() != 4096 || uint64(l) != 3<<32|4096 || l.String() != "3:4096" {
		t.Errorf("lsn %v", l)
	}
	if CompareLSN(MakeLSN(2, 9), MakeLSN(3, 1)) != -1 || CompareLSN(MakeLSN(3, 9), MakeLSN(3, 1)) != 1 || CompareLSN(l, l) != 0 {
		t.Error("CompareLSN")
	}
	var b [8]byte
	be.PutUint32(b[:], LogHeaderMagic)
	be.PutUint32(b[4:], 6)
	if LogCycle(b[:]) != 6 {
		t.Error("LogCycle of a header block")
	}
	be.PutUint32(b[:], 9)
	if LogCycle(b[:]) != 9 || LogCycle(b[:3]) != 0 {
		t.Error("LogCycle of a data block")
	}
}

func TestOpAndTransHeader(t *testing.T) {
	o := LogOpHeader{Tid: 0xdeadbeef, Len: 16, ClientID: LogClientTransaction, Flags: OpWasContTrans | OpEndTrans}
	b := make([]byte, LogOpHeaderSize)
	o.Encode(b)
	want := []byte{0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 16, 0x69, 0x18, 0, 0}
	if !bytes.Equal(b, want) {
		t.Errorf("op header % x, want % x", b, want)
	}
	if g, err := DecodeLogOpHeader(b); err != nil || g != o {
		t.Errorf("decode %+v %v", g, err)
	}
	if _, err := DecodeLogOpHeader(b[:11]); err == nil {
		t.Error("short op header accepted")
	}
	if OpFlagsString(0x18) != "WAS_CONT|END" || OpFlagsString(0) != "0" {
		t.Error(OpFlagsString(0x18))
	}
	th := TransHeader{Magic: TransHeaderMagic, Type: TransCheckpoint, Tid: 7, NumItems: 3}
	tb := make([]byte, TransHeaderSize)
	th.Encode(tb)
	if string(tb[:4]) != "NART" { // host (little-endian) order of "TRAN"
		t.Errorf("trans header magic bytes %q", tb[:4])
	}
	if g, _ := DecodeTransHeader(tb); g != th {
		t.Errorf("trans header %+v", g)
	}
	if LogItemName(LIBuf) != "XFS_LI_BUF" || LogItemName(LICUDRT) != "XFS_LI_CUD_RT" || LogItemName(0x1300) != "unknown log item 0x1300" {
		t.Error("LogItemName")
	}
}

func TestBufLogFormat(t *testing.T) {
	f := &BufLogFormat{Type: LIBuf, Len: 8, Blkno: 12345, MapSize: uint32(BlfMapSize(4096))}
	if f.MapSize != 1 || BlfMapSize(65536) != 16 || BlfMapSize(512) != 1 {
		t.Fatalf("map size %d", f.MapSize)
	}
	f.SetBlft(BlftAGI)
	f.Flags |= BlfInodeBuf
	if f.Blft() != BlftAGI || f.Flags != 0x3801 {
		t.Errorf("flags %#x", f.Flags)
	}
	f.MarkDirty(0, 0)       // chunk 0
	f.MarkDirty(300, 520)   // chunks 2..4
	f.MarkDirty(4095, 4095) // chunk 31
	runs := f.Runs()
	want := []DirtyRun{{0, 1}, {2, 3}, {31, 1}}
	if len(runs) != len(want) {
		t.Fatalf("runs %v", runs)
	}
	for i := range want {
		if runs[i] != want[i] {
			t.Errorf("runs %v, want %v", runs, want)
		}
	}
	if !f.IsDirty(3) || f.IsDirty(1) || f.IsDirty(32) || f.IsDirty(-1) {
		t.Error("IsDirty")
	}
	f.Size = uint16(1 + len(runs))
	b := make([]byte, f.EncodedSize())
	f.Encode(b)
	g, err := DecodeBufLogFormat(b)
	if err != nil {
		t.Fatal(err)
	}
	if g.Blkno != 12345 || g.Len != 8 || g.Size != 4 || g.DataMap[0] != f.DataMap[0] || g.Flags != f.Flags {
		t.Errorf("round trip %+v", g)
	}
	if _, err := DecodeBufLogFormat(b[:20]); err == nil {
		t.Error("bitmap missing accepted")
	}
	le.PutUint32(b[16:], 18)
	if _, err := DecodeBufLogFormat(append(b, make([]byte, 100)...)); err == nil {
		t.Error("blf_map_size 18 accepted")
	}
	// A run across a word boundary.
	h := &BufLogFormat{MapSize: 2}
	h.MarkDirty(30*BlfChunk, 34*BlfChunk-1)
	if r := h.Runs(); len(r) != 1 || r[0] != (DirtyRun{30, 4}) {
		t.Errorf("runs across words %v", r)
	}
}

func TestInodeLogFormat(t *testing.T) {
	f := &InodeLogFormat{Type: LIInode, Size: 2, Fields: ILogCore | ILogDExt, DSize: 16, Ino: 133, Blkno: 96, Len: 16, Boffset: 2560}
	le.PutUint32(f.U[:], 0x801)
	b := make([]byte, InodeLogFormatSize)
	f.Encode(b)
	g, err := DecodeInodeLogFormat(b)
	if err != nil || *g != *f || g.Rdev() != 0x801 {
		t.Fatalf("round trip %+v %v", g, err)
	}
	// The 32-bit layout: no ilf_pad.
	b32 := append(append([]byte{}, b[:12]...), b[16:]...)
	g, err = DecodeInodeLogFormat(b32)
	if err != nil || *g != *f {
		t.Errorf("32-bit layout %+v %v", g, err)
	}
	if _, err := DecodeInodeLogFormat(b[:40]); err == nil {
		t.Error("40-byte inode log format accepted")
	}
}

func TestLogDinodeAndIcreate(t *testing.T) {
	b := make([]byte, LogDinodeSize)
	le.PutUint16(b, 0x494e)
	b[4] = 3
	le.PutUint32(b[96:], 0xffffffff)
	le.PutUint64(b[112:], 0x100000002)
	le.PutUint64(b[152:], 133)
	d, err := DecodeLogDinode(b)
	if err != nil || d.Magic != 0x494e || d.Version != 3 || d.NextUnlinked != NullAgino || d.LSN != 0x100000002 || d.Ino != 133 {
		t.Errorf("log dinode %+v %v", d, err)
	}
	if _, err := DecodeLogDinode(b[:95]); err == nil {
		t.Error("short log dinode accepted")
	}
	c := make([]byte, IcreateLogSize)
	le.PutUint16(c, LIIcreate)
	le.PutUint16(c[2:], 1)
	be.PutUint32(c[8:], 0x18)
	be.PutUint32(c[12:], 64)
	be.PutUint32(c[16:], 512)
	be.PutUint32(c[20:], 8)
	ic, err := DecodeIcreateLog(c)
	if err != nil || ic.Type != LIIcreate || ic.AGBno != 0x18 || ic.Count != 64 || ic.ISize != 512 || ic.Length != 8 {
		t.Errorf("icreate %+v %v", ic, err)
	}
	u := UnmountLogFormat{Magic: UnmountType}
	ub := make([]byte, 8)
	u.Encode(ub)
	if g, _ := DecodeUnmountLogFormat(ub); g != u || ub[0] != 0x6e || ub[1] != 0x55 {
		t.Errorf("unmount format % x", ub)
	}
}

// TestLogSplitRecord checks xlog_split_iclog's cycle advance: only the
// first word of the BBs from the split on changes, the header magic is
// skipped.
func TestLogSplitRecord(t *testing.T) {
	buf := make([]byte, 4*BBSize)
	for i := 0; i < 4; i++ {
		be.PutUint32(buf[i*BBSize:], 7)
		be.PutUint32(buf[i*BBSize+4:], 99)
	}
	be.PutUint32(buf[3*BBSize:], LogHeaderMagic-1)
	LogSplitRecord(buf, 2*BBSize)
	for i, want := range []uint32{7, 7, 8, LogHeaderMagic + 1} {
		if got := be.Uint32(buf[i*BBSize:]); got != want || be.Uint32(buf[i*BBSize+4:]) != 99 {
			t.Errorf("BB %d: cycle %#x, want %#x (second word %d)", i, got, want, be.Uint32(buf[i*BBSize+4:]))
		}
	}
}
