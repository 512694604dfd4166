package ondisk

import "time"

// BigtimeEpochOffset is XFS_BIGTIME_EPOCH_OFFSET: the bigtime epoch is the
// smallest legacy timestamp (-2^31 s, December 1901), so an on-disk bigtime
// second count minus this offset is a Unix second count.
const BigtimeEpochOffset = int64(1) << 31

const nsecPerSec = 1_000_000_000

// Timestamp is an inode timestamp relative to the Unix epoch, decoded from
// either on-disk form (xfs_timestamp_t): legacy (t_sec s32, t_nsec u32) or
// bigtime (one u64 of nanoseconds since the bigtime epoch, inodes with
// XFS_DIFLAG2_BIGTIME). This struct does not represent an on-disk struct;
// Nsec is kept as stored so a corrupt legacy value still round-trips.
type Timestamp struct {
	Sec  int64
	Nsec uint32
}

// DecodeTimestamp decodes the 8-byte on-disk timestamp raw (big-endian
// value) in the given form (xfs_inode_from_disk_ts).
func DecodeTimestamp(raw uint64, bigtime bool) Timestamp {
	if bigtime {
		// xfs_inode_from_disk_ts: div_u64_rem(t, NSEC_PER_SEC), then
		// xfs_bigtime_to_unix.
		return Timestamp{
			Sec:  int64(raw/nsecPerSec) - BigtimeEpochOffset,
			Nsec: uint32(raw % nsecPerSec),
		}
	}
	return Timestamp{Sec: int64(int32(uint32(raw >> 32))), Nsec: uint32(raw)}
}

// Encode returns the 8-byte on-disk value of t in the given form
// (xfs_inode_to_disk_ts, xfs_inode_encode_bigtime). A time outside the
// form's range is stored truncated, as the kernel's casts would.
func (t Timestamp) Encode(bigtime bool) uint64 {
	if bigtime {
		return uint64(t.Sec+BigtimeEpochOffset)*nsecPerSec + uint64(t.Nsec)
	}
	return uint64(uint32(int32(t.Sec)))<<32 | uint64(t.Nsec)
}

// Time converts t to a time.Time (UTC).
func (t Timestamp) Time() time.Time { return time.Unix(t.Sec, int64(t.Nsec)).UTC() }
