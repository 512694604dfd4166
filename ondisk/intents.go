package ondisk

import (
	"fmt"
)

// Intent and done log items (fs/xfs/libxfs/xfs_log_format.h): the EFI/EFD
// (extent free), RUI/RUD (rmap update), CUI/CUD (refcount update) and
// BUI/BUD (bmap update) formats. Each is one region in the byte order of
// the host that logged it (little-endian here, like the other log item
// payloads). An intent is a 16-byte header — type, size (regions, 1),
// record count, id — and its records; a done item is the same header with
// the id of its intent (the EFD also carries extents, the others a pad).
//
// Decoding applies the length rules of the kernel's pass-2 recovery
// functions (xfs_efi_copy_format, xlog_recover_efd_commit_pass2,
// xlog_recover_rui_commit_pass2, ...); Validate applies the value checks
// its intent recovery makes before doing any work (xfs_efi_validate_ext,
// xfs_rui_validate_map, xfs_cui_validate_phys, xfs_bui_validate). Errors
// name the item type, its id, the record and the field.

// Sizes of the intent and done formats and their records.
const (
	IntentHeaderSize  = 16 // the header of struct xfs_{efi,efd,rui,cui,bui}_log_format
	DoneLogFormatSize = 16 // struct xfs_{rud,cud,bud}_log_format
	Extent64Size      = 16 // struct xfs_extent_64 (struct xfs_extent on 64-bit hosts)
	Extent32Size      = 12 // struct xfs_extent_32 (packed: i386 hosts)
	MapExtentSize     = 32 // struct xfs_map_extent
	PhysExtentSize    = 16 // struct xfs_phys_extent

	// Batch limits (XFS_*_MAX_FAST_EXTENTS): how many records the kernel
	// puts in one intent; a BUI holds exactly one.
	EFIMaxFastExtents = 16
	RUIMaxFastExtents = 16
	CUIMaxFastExtents = 16
	BUIMaxFastExtents = 1
)

// RUI me_flags (XFS_RMAP_EXTENT_*): a type in the low byte, flags on top.
const (
	RmapExtentMap           = 1
	RmapExtentMapShared     = 2
	RmapExtentUnmap         = 3
	RmapExtentUnmapShared   = 4
	RmapExtentConvert       = 5
	RmapExtentConvertShared = 6
	RmapExtentAlloc         = 7
	RmapExtentFree          = 8
	RmapExtentTypeMask      = 0xff
	RmapExtentAttrFork      = 1 << 31
	RmapExtentBmbtBlock     = 1 << 30
	RmapExtentUnwritten     = 1 << 29
	RmapExtentFlags         = RmapExtentTypeMask | RmapExtentAttrFork | RmapExtentBmbtBlock | RmapExtentUnwritten
)

// CUI pe_flags: the type only (enum xfs_refcount_intent_type,
// XFS_REFCOUNT_EXTENT_FLAGS).
const (
	RefcountIncrease       = 1
	RefcountDecrease       = 2
	RefcountAllocCow       = 3
	RefcountFreeCow        = 4
	RefcountExtentTypeMask = 0xff
	RefcountExtentFlags    = RefcountExtentTypeMask
)

// BUI me_flags (XFS_BMAP_EXTENT_*; enum xfs_bmap_intent_type). The flag
// bits differ from the RUI's.
const (
	BmapMap             = 1
	BmapUnmap           = 2
	BmapExtentTypeMask  = 0xff
	BmapExtentAttrFork  = 1 << 31
	BmapExtentUnwritten = 1 << 30
	BmapExtentRealtime  = 1 << 29
	BmapExtentFlags     = BmapExtentTypeMask | BmapExtentAttrFork | BmapExtentUnwritten | BmapExtentRealtime
)

// RmapNonInodeOwner is XFS_RMAP_NON_INODE_OWNER's bit: an rmap owner with
// bit 63 set is a special owner (XFS_RMAP_OWN_*), not an inode.
const RmapNonInodeOwner = uint64(1) << 63

// Names of the record types, for messages.
const (
	rmapTypeName            = "map map_shared unmap unmap_shared convert convert_shared alloc free"
	refcountTypeName        = "increase decrease alloc_cow free_cow"
	bmapTypeName            = "map unmap"
	maxIntentDescRecords    = 4
	intentErrorStructFormat = "%s %#x"
)

// FreeExtent is struct xfs_extent: an extent of an EFI or EFD.
type FreeExtent struct {
	Start uint64 // ext_start: fsblock
	Len   uint32 // ext_len
}

// MapExtent is struct xfs_map_extent: a record of an RUI or a BUI.
type MapExtent struct {
	Owner      uint64 // 0 me_owner: inode number or XFS_RMAP_OWN_* (RUI), inode number (BUI)
	StartBlock uint64 // 8 me_startblock: fsblock
	StartOff   uint64 // 16 me_startoff: file block offset
	Len        uint32 // 24 me_len
	Flags      uint32 // 28 me_flags: type and flags
}

// PhysExtent is struct xfs_phys_extent: a record of a CUI.
type PhysExtent struct {
	StartBlock uint64 // 0 pe_startblock: fsblock
	Len        uint32 // 8 pe_len
	Flags      uint32 // 12 pe_flags: the type
}

// IntentLog mirrors the family of intent and done log formats that share
// the 16-byte header: struct xfs_efi_log_format (and its _32/_64 forms),
// xfs_efd_log_format, xfs_rui_log_format, xfs_rud_log_format,
// xfs_cui_log_format, xfs_cud_log_format, xfs_bui_log_format and
// xfs_bud_log_format. The records are in the slice of their kind.
type IntentLog struct {
	Type uint16 // 0 *_type: LIEFI, LIEFD, LIRUI, LIRUD, LICUI, LICUD, LIBUI, LIBUD
	Size uint16 // 2 *_size: regions of the item (1)
	// NExtents is *_nextents (4); for RUD, CUD and BUD it is the pad.
	NExtents uint32
	// ID is the intent's id (8): *_id of an intent, the id of the intent
	// it finishes for a done item (efd_efi_id, rud_rui_id, ...).
	ID uint64
	// Ext32 marks an EFI or EFD logged with 12-byte xfs_extent_32
	// records (a 32-bit host); Encode writes them the same way.
	Ext32 bool
	Free  []FreeExtent // EFI, EFD: efi_extents, efd_extents
	Maps  []MapExtent  // RUI, BUI: rui_extents, bui_extents
	Phys  []PhysExtent // CUI: cui_extents
}

// IsIntentType reports the intent types this file decodes.
func IsIntentType(t uint16) bool {
	return t == LIEFI || t == LIRUI || t == LICUI || t == LIBUI
}

// IsDoneType reports the done types this file decodes.
func IsDoneType(t uint16) bool {
	return t == LIEFD || t == LIRUD || t == LICUD || t == LIBUD
}

// IntentOfDone is the intent type a done type cancels (the type
// xlog_recover_release_intent matches), 0 for other types.
func IntentOfDone(t uint16) uint16 {
	switch t {
	case LIEFD:
		return LIEFI
	case LIRUD:
		return LIRUI
	case LICUD:
		return LICUI
	case LIBUD:
		return LIBUI
	}
	return 0
}

// DoneOfIntent is the done type that finishes an intent type, 0 for other
// types.
func DoneOfIntent(t uint16) uint16 {
	switch t {
	case LIEFI:
		return LIEFD
	case LIRUI:
		return LIRUD
	case LICUI:
		return LICUD
	case LIBUI:
		return LIBUD
	}
	return 0
}

// IsRefusedIntentType reports the intent and done items of features xfsfree
// does not recover (logged xattrs and parent pointers, file range
// exchange, realtime groups): ATTRI/ATTRD, XMI/XMD and the _RT items.
func IsRefusedIntentType(t uint16) bool {
	switch t {
	case LIATTRI, LIATTRD, LIXMI, LIXMD, LIEFIRT, LIEFDRT, LIRUIRT, LIRUDRT, LICUIRT, LICUDRT:
		return true
	}
	return false
}

// Name is the item's kernel type name.
func (f *IntentLog) Name() string { return LogItemName(f.Type) }

func (f *IntentLog) where() string { return fmt.Sprintf(intentErrorStructFormat, f.Name(), f.ID) }

// corrupt builds the error for a bad field of record i (i < 0: a header
// field).
func (f *IntentLog) corrupt(i int, field string, found, want any, msg string) *CorruptError {
	if i >= 0 {
		field = fmt.Sprintf("%s[%d].%s", f.recordsName(), i, field)
	}
	return &CorruptError{AG: NoAG, Daddr: -1, Struct: f.where(), Field: field, Found: found, Want: want, Msg: msg}
}

func (f *IntentLog) recordsName() string {
	switch f.Type {
	case LIEFI:
		return "efi_extents"
	case LIEFD:
		return "efd_extents"
	case LIRUI:
		return "rui_extents"
	case LICUI:
		return "cui_extents"
	case LIBUI:
		return "bui_extents"
	}
	return "extents"
}

func lengthError(t uint16, n int, want any, msg string) error {
	return &CorruptError{AG: NoAG, Daddr: -1, Struct: LogItemName(t), Field: "length", Found: n, Want: want, Msg: msg}
}

// DecodeIntentLog decodes the first region b of an intent or done item
// (its type is the u16 it starts with, the item type recovery dispatches
// on), with the kernel's pass-2 length rules:
//   - EFI, EFD: at least 16 bytes, and 16+16n (xfs_extent_64) or 16+12n
//     (xfs_extent_32) for n = *_nextents;
//   - RUI, CUI: exactly 16 + n records (32, 16 bytes each);
//   - BUI: bui_nextents 1 and exactly 48 bytes;
//   - RUD, CUD, BUD: exactly 16 bytes.
func DecodeIntentLog(b []byte) (*IntentLog, error) {
	if len(b) < 2 {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log item", Field: "length", Found: len(b), Want: IntentHeaderSize}
	}
	t := le.Uint16(b)
	if !IsIntentType(t) && !IsDoneType(t) {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: LogItemName(t), Field: "type", Found: t, Msg: "is not an EFI, EFD, RUI, RUD, CUI, CUD, BUI or BUD"}
	}
	if len(b) < IntentHeaderSize {
		return nil, lengthError(t, len(b), IntentHeaderSize, "is shorter than the item header")
	}
	f := &IntentLog{Type: t, Size: le.Uint16(b[2:]), NExtents: le.Uint32(b[4:]), ID: le.Uint64(b[8:])}
	n := uint64(f.NExtents)
	body := b[IntentHeaderSize:]
	switch t {
	case LIEFI, LIEFD:
		switch uint64(len(body)) {
		case Extent64Size * n:
			f.Free = make([]FreeExtent, n)
			for i := range f.Free {
				r := body[i*Extent64Size:]
				f.Free[i] = FreeExtent{Start: le.Uint64(r), Len: le.Uint32(r[8:])}
			}
		case Extent32Size * n:
			f.Ext32 = true
			f.Free = make([]FreeExtent, n)
			for i := range f.Free {
				r := body[i*Extent32Size:]
				f.Free[i] = FreeExtent{Start: le.Uint64(r), Len: le.Uint32(r[8:])}
			}
		default:
			return nil, lengthError(t, len(b), nil, fmt.Sprintf("is neither %d nor %d for %d extents (%#x)",
				IntentHeaderSize+Extent64Size*n, IntentHeaderSize+Extent32Size*n, n, f.ID))
		}
	case LIRUI, LIBUI:
		if t == LIBUI && n != BUIMaxFastExtents {
			return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: fmt.Sprintf(intentErrorStructFormat, LogItemName(t), f.ID),
				Field: "bui_nextents", Found: f.NExtents, Want: uint32(BUIMaxFastExtents)}
		}
		if uint64(len(body)) != MapExtentSize*n {
			return nil, lengthError(t, len(b), int(IntentHeaderSize+MapExtentSize*n), fmt.Sprintf("for %d extents (%#x)", n, f.ID))
		}
		f.Maps = make([]MapExtent, n)
		for i := range f.Maps {
			r := body[i*MapExtentSize:]
			f.Maps[i] = MapExtent{Owner: le.Uint64(r), StartBlock: le.Uint64(r[8:]), StartOff: le.Uint64(r[16:]),
				Len: le.Uint32(r[24:]), Flags: le.Uint32(r[28:])}
		}
	case LICUI:
		if uint64(len(body)) != PhysExtentSize*n {
			return nil, lengthError(t, len(b), int(IntentHeaderSize+PhysExtentSize*n), fmt.Sprintf("for %d extents (%#x)", n, f.ID))
		}
		f.Phys = make([]PhysExtent, n)
		for i := range f.Phys {
			r := body[i*PhysExtentSize:]
			f.Phys[i] = PhysExtent{StartBlock: le.Uint64(r), Len: le.Uint32(r[8:]), Flags: le.Uint32(r[12:])}
		}
	default: // RUD, CUD, BUD
		if len(b) != DoneLogFormatSize {
			return nil, lengthError(t, len(b), DoneLogFormatSize, "")
		}
	}
	return f, nil
}

// EncodedSize is the length of the logged region.
func (f *IntentLog) EncodedSize() int {
	switch {
	case f.Type == LIEFI || f.Type == LIEFD:
		if f.Ext32 {
			return IntentHeaderSize + Extent32Size*len(f.Free)
		}
		return IntentHeaderSize + Extent64Size*len(f.Free)
	case f.Type == LIRUI || f.Type == LIBUI:
		return IntentHeaderSize + MapExtentSize*len(f.Maps)
	case f.Type == LICUI:
		return IntentHeaderSize + PhysExtentSize*len(f.Phys)
	}
	return DoneLogFormatSize
}

// Encode writes f as the kernel logs it (xfs_efi_item_format and its
// twins) into b, which must hold EncodedSize bytes: the header with
// *_nextents set to the number of records (RUD/CUD/BUD: NExtents as the
// pad), then the records with their padding zeroed.
func (f *IntentLog) Encode(b []byte) {
	n := f.EncodedSize()
	_ = b[n-1]
	clear(b[:n])
	le.PutUint16(b, f.Type)
	le.PutUint16(b[2:], f.Size)
	le.PutUint64(b[8:], f.ID)
	body := b[IntentHeaderSize:]
	switch {
	case f.Type == LIEFI || f.Type == LIEFD:
		le.PutUint32(b[4:], uint32(len(f.Free)))
		sz := Extent64Size
		if f.Ext32 {
			sz = Extent32Size
		}
		for i, e := range f.Free {
			le.PutUint64(body[i*sz:], e.Start)
			le.PutUint32(body[i*sz+8:], e.Len)
		}
	case f.Type == LIRUI || f.Type == LIBUI:
		le.PutUint32(b[4:], uint32(len(f.Maps)))
		for i, m := range f.Maps {
			r := body[i*MapExtentSize:]
			le.PutUint64(r, m.Owner)
			le.PutUint64(r[8:], m.StartBlock)
			le.PutUint64(r[16:], m.StartOff)
			le.PutUint32(r[24:], m.Len)
			le.PutUint32(r[28:], m.Flags)
		}
	case f.Type == LICUI:
		le.PutUint32(b[4:], uint32(len(f.Phys)))
		for i, p := range f.Phys {
			r := body[i*PhysExtentSize:]
			le.PutUint64(r, p.StartBlock)
			le.PutUint32(r[8:], p.Len)
			le.PutUint32(r[12:], p.Flags)
		}
	default:
		le.PutUint32(b[4:], f.NExtents)
	}
}

// Bytes returns the encoded region.
func (f *IntentLog) Bytes() []byte {
	b := make([]byte, f.EncodedSize())
	f.Encode(b)
	return b
}

// DoneFor returns the done item that finishes intent: an EFD carrying the
// EFI's extents (xfs_efd_from_efi, as recovery and a finished EFI log it),
// or the 16-byte RUD, CUD or BUD, each with the intent's id. It returns nil
// for anything but an EFI, RUI, CUI or BUI.
func DoneFor(intent *IntentLog) *IntentLog {
	t := DoneOfIntent(intent.Type)
	if t == 0 {
		return nil
	}
	d := &IntentLog{Type: t, Size: 1, ID: intent.ID}
	if t == LIEFD {
		d.Free = append([]FreeExtent(nil), intent.Free...)
		d.NExtents = uint32(len(d.Free))
	}
	return d
}

// Validate makes the value checks the kernel's intent recovery makes on
// every record before it does any work; one bad record makes the whole
// intent corrupt (XFS_CORRUPTION_ERROR, the mount fails):
//   - EFI: xfs_efi_validate_ext — each extent passes VerifyFsbext;
//   - RUI: xfs_rui_validate_map — the rmapbt feature, no unknown flags, a
//     type 1..8, an owner that is a valid inode unless bit 63 is set,
//     VerifyFileext(startoff, len) and VerifyFsbext(startblock, len);
//   - CUI: xfs_cui_validate_phys — the reflink feature, no flag but the
//     type, a type 1..4, VerifyFsbext;
//   - BUI: xfs_bui_validate — one record, no unknown flags, a type 1..2,
//     VerifyIno(owner), VerifyFileext, and VerifyFsbext (VerifyRtbext with
//     the realtime flag).
//
// Done items have nothing to check.
func (f *IntentLog) Validate(g *Geometry) error {
	switch f.Type {
	case LIEFI:
		for i, e := range f.Free {
			if !g.VerifyFsbext(e.Start, uint64(e.Len)) {
				return f.extentError(g, i, "ext_start/ext_len", e.Start, uint64(e.Len))
			}
		}
	case LIRUI:
		for i, m := range f.Maps {
			if !g.HasRmapbt {
				return f.corrupt(i, "me_flags", m.Flags, nil, "an rmap update intent on a filesystem without rmapbt")
			}
			if m.Flags&^RmapExtentFlags != 0 {
				return f.corrupt(i, "me_flags", m.Flags, nil, fmt.Sprintf("has unknown flags %#x", m.Flags&^uint32(RmapExtentFlags)))
			}
			if typ := m.Flags & RmapExtentTypeMask; typ < RmapExtentMap || typ > RmapExtentFree {
				return f.corrupt(i, "me_flags", m.Flags, nil, fmt.Sprintf("has type %d, not 1..8", typ))
			}
			if m.Owner&RmapNonInodeOwner == 0 && !g.VerifyIno(m.Owner) {
				return f.corrupt(i, "me_owner", m.Owner, nil, "is neither a special owner nor a valid inode number")
			}
			if !VerifyFileext(m.StartOff, uint64(m.Len)) {
				return f.corrupt(i, "me_startoff/me_len", fmt.Sprintf("%d/%d", m.StartOff, m.Len), nil, "is not a valid range of file blocks")
			}
			if !g.VerifyFsbext(m.StartBlock, uint64(m.Len)) {
				return f.extentError(g, i, "me_startblock/me_len", m.StartBlock, uint64(m.Len))
			}
		}
	case LICUI:
		for i, p := range f.Phys {
			if !g.HasReflink {
				return f.corrupt(i, "pe_flags", p.Flags, nil, "a refcount update intent on a filesystem without reflink")
			}
			if p.Flags&^RefcountExtentFlags != 0 {
				return f.corrupt(i, "pe_flags", p.Flags, nil, fmt.Sprintf("has unknown flags %#x", p.Flags&^uint32(RefcountExtentFlags)))
			}
			if typ := p.Flags & RefcountExtentTypeMask; typ < RefcountIncrease || typ > RefcountFreeCow {
				return f.corrupt(i, "pe_flags", p.Flags, nil, fmt.Sprintf("has type %d, not 1..4", typ))
			}
			if !g.VerifyFsbext(p.StartBlock, uint64(p.Len)) {
				return f.extentError(g, i, "pe_startblock/pe_len", p.StartBlock, uint64(p.Len))
			}
		}
	case LIBUI:
		if len(f.Maps) != BUIMaxFastExtents {
			return f.corrupt(-1, "bui_nextents", len(f.Maps), BUIMaxFastExtents, "")
		}
		m := f.Maps[0]
		if m.Flags&^BmapExtentFlags != 0 {
			return f.corrupt(0, "me_flags", m.Flags, nil, fmt.Sprintf("has unknown flags %#x", m.Flags&^uint32(BmapExtentFlags)))
		}
		if typ := m.Flags & BmapExtentTypeMask; typ != BmapMap && typ != BmapUnmap {
			return f.corrupt(0, "me_flags", m.Flags, nil, fmt.Sprintf("has type %d, not 1..2", typ))
		}
		if !g.VerifyIno(m.Owner) {
			return f.corrupt(0, "me_owner", m.Owner, nil, "is not a valid inode number")
		}
		if !VerifyFileext(m.StartOff, uint64(m.Len)) {
			return f.corrupt(0, "me_startoff/me_len", fmt.Sprintf("%d/%d", m.StartOff, m.Len), nil, "is not a valid range of file blocks")
		}
		if m.Flags&BmapExtentRealtime != 0 {
			if !g.VerifyRtbext(m.StartBlock, uint64(m.Len)) {
				return f.corrupt(0, "me_startblock/me_len", fmt.Sprintf("%d/%d", m.StartBlock, m.Len), nil, "is not an extent of the realtime device")
			}
		} else if !g.VerifyFsbext(m.StartBlock, uint64(m.Len)) {
			return f.extentError(g, 0, "me_startblock/me_len", m.StartBlock, uint64(m.Len))
		}
	}
	return nil
}

func (f *IntentLog) extentError(g *Geometry, i int, field string, fsbno, n uint64) error {
	return f.corrupt(i, field, fmt.Sprintf("%d/%d (AG %d block %d)", fsbno, n, fsbno>>g.AGBlkLog, g.FsbToAgbno(fsbno)), nil,
		"is not an extent of one AG's blocks past its headers (xfs_verify_fsbext)")
}

// String describes the item for messages: type, id and up to four
// records, e.g. "XFS_LI_CUI 0xffff8881e75d46c0: decrease 0x2c+8".
func (f *IntentLog) String() string {
	s := fmt.Sprintf(intentErrorStructFormat, f.Name(), f.ID)
	var recs []string
	switch f.Type {
	case LIEFI, LIEFD:
		for _, e := range f.Free {
			recs = append(recs, fmt.Sprintf("%#x+%d", e.Start, e.Len))
		}
	case LIRUI, LIBUI:
		names := rmapTypeName
		if f.Type == LIBUI {
			names = bmapTypeName
		}
		for _, m := range f.Maps {
			recs = append(recs, fmt.Sprintf("%s owner %#x %#x+%d off %d flags %#x", typeName(names, m.Flags&0xff), m.Owner, m.StartBlock, m.Len, m.StartOff, m.Flags))
		}
	case LICUI:
		for _, p := range f.Phys {
			recs = append(recs, fmt.Sprintf("%s %#x+%d", typeName(refcountTypeName, p.Flags&0xff), p.StartBlock, p.Len))
		}
	default:
		return s
	}
	if len(recs) == 0 {
		return s + ": no records"
	}
	extra := ""
	if len(recs) > maxIntentDescRecords {
		extra = fmt.Sprintf(" and %d more", len(recs)-maxIntentDescRecords)
		recs = recs[:maxIntentDescRecords]
	}
	out := s + ":"
	for i, r := range recs {
		if i > 0 {
			out += ","
		}
		out += " " + r
	}
	return out + extra
}

// typeName picks the typ'th (1-based) word of names.
func typeName(names string, typ uint32) string {
	i := uint32(1)
	start := 0
	for j := 0; j <= len(names); j++ {
		if j == len(names) || names[j] == ' ' {
			if i == typ {
				return names[start:j]
			}
			i++
			start = j + 1
		}
	}
	return fmt.Sprintf("type %d", typ)
}
