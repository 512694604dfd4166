package ondisk

// The dinode core's field table (struct xfs_dinode, v3 core), for reading
// and writing fields of an encoded inode in place. Dinode (dinode.go)
// decodes and encodes the whole inode.

// DinodeLSNOff is offsetof(struct xfs_dinode, di_lsn): a commit stamps the
// transaction's LSN there in every inode it logs.
const DinodeLSNOff = 112

// DinodeFields names fields of the inode core by bit.
type DinodeFields uint64

// The inode core fields, in on-disk order.
const (
	DiMagic DinodeFields = 1 << iota
	DiMode
	DiVersion
	DiFormat
	DiMetatype // formerly di_onlink
	DiUID
	DiGID
	DiNlink
	DiProjidLo
	DiProjidHi
	DiBigNextents // di_big_nextents, or di_v3_pad (di_flushiter in its last 2 bytes on v2)
	DiAtime
	DiMtime
	DiCtime
	DiSize
	DiNblocks
	DiExtsize
	DiNextents  // di_nextents, or di_big_anextents with NREXT64
	DiAnextents // di_anextents, or di_nrext64_pad with NREXT64
	DiForkoff
	DiAformat
	DiDmevmask
	DiDmstate
	DiFlags
	DiGen
	DiNextUnlinked
	DiCrc
	DiChangeCount
	DiLsn
	DiFlags2
	DiCowextsize
	DiPad2
	DiCrtime
	DiIno
	DiUUID
)

// dinodeLayout is the field table of the v3 inode core.
var dinodeLayout = &Layout{Struct: "dinode", Size: DinodeCoreSize, Fields: []Field{
	{Name: "di_magic", Off: 0, Size: 2},
	{Name: "di_mode", Off: 2, Size: 2},
	{Name: "di_version", Off: 4, Size: 1},
	{Name: "di_format", Off: 5, Size: 1},
	{Name: "di_metatype", Off: 6, Size: 2},
	{Name: "di_uid", Off: 8, Size: 4},
	{Name: "di_gid", Off: 12, Size: 4},
	{Name: "di_nlink", Off: 16, Size: 4},
	{Name: "di_projid_lo", Off: 20, Size: 2},
	{Name: "di_projid_hi", Off: 22, Size: 2},
	{Name: "di_big_nextents", Off: 24, Size: 8},
	{Name: "di_atime", Off: 32, Size: 8},
	{Name: "di_mtime", Off: 40, Size: 8},
	{Name: "di_ctime", Off: 48, Size: 8},
	{Name: "di_size", Off: 56, Size: 8},
	{Name: "di_nblocks", Off: 64, Size: 8},
	{Name: "di_extsize", Off: 72, Size: 4},
	{Name: "di_nextents", Off: 76, Size: 4},
	{Name: "di_anextents", Off: 80, Size: 2},
	{Name: "di_forkoff", Off: 82, Size: 1},
	{Name: "di_aformat", Off: 83, Size: 1},
	{Name: "di_dmevmask", Off: 84, Size: 4},
	{Name: "di_dmstate", Off: 88, Size: 2},
	{Name: "di_flags", Off: 90, Size: 2},
	{Name: "di_gen", Off: 92, Size: 4},
	{Name: "di_next_unlinked", Off: DinodeNextUnlinkedOff, Size: 4},
	{Name: "di_crc", Off: DinodeCrcOff, Size: 4, LE: true},
	{Name: "di_changecount", Off: 104, Size: 8},
	{Name: "di_lsn", Off: DinodeLSNOff, Size: 8},
	{Name: "di_flags2", Off: 120, Size: 8},
	{Name: "di_cowextsize", Off: 128, Size: 4},
	{Name: "di_pad2", Off: 132, Size: 12, Elem: 1},
	{Name: "di_crtime", Off: 144, Size: 8},
	{Name: "di_ino", Off: 152, Size: 8},
	{Name: "di_uuid", Off: 160, Size: 16, Elem: 1},
}}

// Layout is the inode core's field table.
func (DinodeFields) Layout() *Layout { return dinodeLayout }

// Field returns the field of a single bit.
func (f DinodeFields) Field() Field { return dinodeLayout.field(uint64(f)) }

// Get returns the value of the single scalar field f of the encoded inode
// b. Timestamps are returned raw (see DecodeTimestamp).
func (f DinodeFields) Get(b []byte) uint64 { return f.Field().Uint(b) }

// Set stores v in the single scalar field f of the encoded inode b; the
// caller recomputes the CRC (DinodeCalcCRC).
func (f DinodeFields) Set(b []byte, v uint64) { f.Field().PutUint(b, v) }
