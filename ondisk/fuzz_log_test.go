package ondisk

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// realLogRecord returns the packed header block and data of the first
// record the kernel writes after mkfs (log block 2), or nil when mkfs,
// mount or root are missing.
func realLogRecord(f *testing.F) (hdr, data []byte) {
	// Fuzz workers rerun the fuzz function: make the image once per
	// machine and keep the record in a cache file.
	cache := filepath.Join(os.TempDir(), "xfsfree-fuzz-logrecord.bin")
	if b, err := os.ReadFile(cache); err == nil && len(b) > LogHeaderSize {
		return b[:LogHeaderSize], b[LogHeaderSize:]
	}
	hdr, data = makeRealLogRecord(f)
	if hdr != nil {
		tmp := cache + ".tmp" + filepath.Base(f.TempDir())
		if os.WriteFile(tmp, append(append([]byte{}, hdr...), data...), 0o644) == nil {
			os.Rename(tmp, cache)
		}
	}
	return hdr, data
}

func makeRealLogRecord(f *testing.F) (hdr, data []byte) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, tool := range []string{"mkfs.xfs", "mount", "umount", "xfs_io"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, nil
		}
	}
	dir := f.TempDir()
	img, mnt := filepath.Join(dir, "x.img"), filepath.Join(dir, "mnt")
	if os.WriteFile(img, nil, 0o644) != nil || os.Truncate(img, 300<<20) != nil || os.Mkdir(mnt, 0o755) != nil {
		return nil, nil
	}
	if exec.Command("mkfs.xfs", "-q", img).Run() != nil || exec.Command("mount", "-o", "loop", img, mnt).Run() != nil {
		return nil, nil
	}
	for i := 0; i < 20; i++ {
		os.WriteFile(filepath.Join(mnt, string(rune('a'+i))), []byte("x"), 0o644)
	}
	exec.Command("xfs_io", "-x", "-c", "shutdown -f", mnt).Run()
	exec.Command("umount", mnt).Run()
	fd, err := os.Open(img)
	if err != nil {
		return nil, nil
	}
	defer fd.Close()
	sbb := make([]byte, 4096)
	fd.ReadAt(sbb, 0)
	sb, err := DecodeSuperblock(sbb)
	if err != nil {
		return nil, nil
	}
	g, err := NewGeometry(sb)
	if err != nil {
		return nil, nil
	}
	hdr = make([]byte, LogHeaderSize)
	fd.ReadAt(hdr, (g.LogStartDaddr+2)*BBSize)
	h, err := DecodeLogRecHeader(hdr)
	if err != nil || h.Magic != LogHeaderMagic || h.Len > LogBigRecordBSize {
		return nil, nil
	}
	data = make([]byte, h.Len)
	fd.ReadAt(data, (g.LogStartDaddr+3)*BBSize)
	return hdr, data
}

// FuzzLogRecord feeds arbitrary header blocks and data to the record
// decoders, the CRC and the unpacking: none may panic.
func FuzzLogRecord(f *testing.F) {
	if hdr, data := realLogRecord(f); hdr != nil {
		f.Add(append(hdr, data...), uint8(1))
	}
	hdrs, data, _ := synthRecord(f, 33*1024, 2, 4, 1)
	f.Add(append(hdrs, data...), uint8(2))
	hdrs, data, _ = synthRecord(f, 1024, 1, 1, 2)
	f.Add(append(hdrs, data...), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, hblks uint8) {
		n := int(hblks%9) * LogHeaderSize
		if n > len(b) {
			n = len(b)
		}
		hdrs, data := b[:n], b[n:]
		h, err := DecodeLogRecHeader(hdrs)
		if err == nil {
			_ = h.Verify(true, LogMaxRecordBSize)
			_ = h.HBlks(true)
			_ = h.DataBBs()
			out := make([]byte, LogHeaderSize)
			h.Encode(out)
			if h2, _ := DecodeLogRecHeader(out); *h2 != *h {
				t.Fatalf("header round trip differs")
			}
		}
		_, _, _, _ = CheckLogRecCRC(hdrs, data)
		_, _ = LogRecCksum(hdrs, data, LogRecSizeOther)
		d := append([]byte(nil), data...)
		hc := append([]byte(nil), hdrs...)
		if LogPackData(hc, d, 9) == nil {
			if err := LogUnpackData(hc, d); err != nil {
				t.Fatalf("unpack after a successful pack: %v", err)
			}
			if string(d[:len(d)-len(d)%BBSize]) != string(data[:len(data)-len(data)%BBSize]) {
				t.Fatalf("pack/unpack round trip differs")
			}
		}
		_ = LogUnpackData(hdrs, append([]byte(nil), data...))
		for i := 1; i*LogHeaderSize <= len(hdrs); i++ {
			_, _ = DecodeLogRecExtHeader(hdrs[i*LogHeaderSize-LogHeaderSize:])
		}
	})
}

// FuzzLogItems feeds arbitrary regions to the log item decoders.
func FuzzLogItems(f *testing.F) {
	blf := &BufLogFormat{Type: LIBuf, Size: 2, Flags: 0x3800, Len: 1, Blkno: 2, MapSize: 1, DataMap: []uint32{1}}
	b := make([]byte, blf.EncodedSize())
	blf.Encode(b)
	f.Add(b)
	ilf := &InodeLogFormat{Type: LIInode, Size: 2, Fields: ILogCore, Ino: 133, Blkno: 96, Len: 16}
	ib := make([]byte, InodeLogFormatSize)
	ilf.Encode(ib)
	f.Add(ib)
	f.Add(make([]byte, LogDinodeSize))
	f.Add([]byte{0x3f, 0x12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x18, 0, 0, 0, 64, 0, 0, 2, 0, 0, 0, 0, 8, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		if f, err := DecodeBufLogFormat(b); err == nil {
			runs := f.Runs()
			total := 0
			for _, r := range runs {
				if r.N <= 0 || !f.IsDirty(r.First) || !f.IsDirty(r.First+r.N-1) {
					t.Fatalf("bad run %v", r)
				}
				total += r.N
			}
			set := 0
			for i := 0; i < int(f.MapSize)*32; i++ {
				if f.IsDirty(i) {
					set++
				}
			}
			if set != total {
				t.Fatalf("runs cover %d bits, %d set", total, set)
			}
			out := make([]byte, f.EncodedSize())
			f.Encode(out)
			if string(out) != string(b[:len(out)]) {
				t.Fatalf("buf log format round trip differs")
			}
			f.MarkDirty(int(f.Len), int(f.Len)*3)
		}
		_, _ = DecodeInodeLogFormat(b)
		_, _ = DecodeLogDinode(b)
		_, _ = DecodeIcreateLog(b)
		_, _ = DecodeTransHeader(b)
		_, _ = DecodeLogOpHeader(b)
		_, _ = DecodeUnmountLogFormat(b)
		_, _, _ = LogItemType(b)
	})
}
