package journal

import (
	"encoding/binary"
	"testing"

	"github.com/xfsfree/xfsfree/ondisk"
)

// FuzzOps feeds arbitrary record data (two records in a row) to the op
// splitter and the transaction assembler: errors are fine, panics are not.
func FuzzOps(f *testing.F) {
	log, head := synthLog()
	l := New(memDev(log), synthGeometry(1024))
	_ = l.Records(head, 2, func(r *Record) error {
		f.Add(append([]byte(nil), r.Data...), uint16(r.Header.NumLogOps), []byte(nil), uint16(0))
		return nil
	})
	all := transOps(7, synthBufItem(1))
	var a, b []byte
	for i, o := range all {
		if i < 3 {
			a = append(a, o...)
		} else {
			b = append(b, o...)
		}
	}
	f.Add(a, uint16(3), b, uint16(len(all)-3))
	f.Fuzz(func(t *testing.T, d1 []byte, n1 uint16, d2 []byte, n2 uint16) {
		asm := NewAssembler(synthGeometry(1024))
		for i, d := range [][]byte{d1, d2} {
			n := n1
			if i == 1 {
				n = n2
			}
			r := &Record{Block: int64(i), Header: &ondisk.LogRecHeader{NumLogOps: uint32(n), Fmt: 1, FSUUID: synthUUID,
				LSN: ondisk.MakeLSN(1, uint32(i))}, Data: d}
			ops, err := SplitOps(r)
			if err == nil {
				end := 0
				for _, o := range ops {
					if o.Offset < end || o.Offset+ondisk.LogOpHeaderSize+len(o.Data) > len(d) {
						t.Fatalf("op at %d overlaps or overruns", o.Offset)
					}
					end = o.Offset + ondisk.LogOpHeaderSize + len(o.Data)
				}
			}
			if err := asm.Add(r, func(tr *RecoveredTrans) error {
				for _, it := range tr.Items {
					if it.Total != 0 && len(it.Regions) > it.Total {
						t.Fatalf("item with %d regions of %d", len(it.Regions), it.Total)
					}
				}
				return nil
			}); err != nil {
				return
			}
		}
		_ = asm.Open()
	})
}

// FuzzFindTail damages a small synthetic log at fuzzed places and runs the
// head/tail search and the record walk over it: no panic, no hang.
func FuzzFindTail(f *testing.F) {
	f.Add(uint32(0), []byte{0})
	f.Add(uint32(2*512+12), []byte{0xff, 0xff, 0xff, 0xff})          // h_len of the first transaction record
	f.Add(uint32(2*512+320), []byte{0, 4, 0, 0})                     // h_size
	f.Add(uint32(1023*512), []byte{0, 0, 0, 1})                      // cycle 1 at the last block
	f.Add(uint32(3*512), []byte{0xfe, 0xed, 0xba, 0xbe, 0, 0, 0, 1}) // a header magic inside data
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		log, _ := synthLog()
		for i, c := range patch {
			log[(int(off)+i*37)%len(log)] ^= c
		}
		if len(patch) >= 4 {
			// Also stamp a fuzzed cycle somewhere.
			blk := int(binary.BigEndian.Uint16(patch[:2])) % 1024
			copy(log[blk*512:], patch[2:4])
		}
		l := New(memDev(log), synthGeometry(1024))
		st, err := l.FindTail()
		if err != nil {
			return
		}
		if st.Head < 0 || st.Head >= 1024 || st.Tail < 0 || st.Tail >= 1024 {
			t.Fatalf("state out of range: %v", st)
		}
		_ = st.String()
		if !st.Clean {
			_, _ = l.Transactions(st.Head, st.Tail, func(*RecoveredTrans) error { return nil })
		}
	})
}
