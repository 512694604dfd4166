#!/usr/bin/env bash
# bench-extract.sh: how fast `xfsfree extract` saves a large orphan, against dd reading the same
# extents with O_DIRECT, on the same image in the same run, as a ratio.
#
# Usage: scripts/bench-extract.sh [SIZE_MIB]     (the orphan's size, default 1024)
#
# Builds a sparse 4 GiB image in a temporary directory under $TMPDIR (removed at exit), mounts it,
# writes SIZE_MIB MiB to a file (xfs_io pwrite, 8 MiB writes, then fsync), holds it open, unlinks
# it, freezes the filesystem, copies the image sparsely (the snapshot: an orphan and a dirty log),
# thaws it, closes the file and unmounts. Then, RUNS times each (default 3), with the page cache
# dropped (echo 3 > /proc/sys/vm/drop_caches) before every run:
#   file    xfsfree extract -q --ino N -o OUT SNAP          (writes OUT sparsely, fsyncs it)
#           against, for each run of contiguous extents xfs_db lists (`bmap -d`), dd
#           if=SNAP of=OUT bs=8M iflag=direct,skip_bytes,count_bytes oflag=seek_bytes conv=notrunc,
#           then sync OUT
#   stream  xfsfree extract -q --ino N -o - SNAP >/dev/null
#           against the same dd commands with of=/dev/null
# and prints each run's seconds, the medians, the rates and the ratios xfsfree/dd (time: below 1 is
# faster than dd). Every output is checked against the orphan's md5 (taken through the kernel
# before the unlink). Needs root, a loop device, xfsprogs, python3 and go.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1024}
RUNS=${RUNS:-3}

[[ $(id -u) -eq 0 ]] || { echo "$0: must run as root (loop mount, drop_caches)" >&2; exit 1; }
for t in mkfs.xfs xfs_db xfs_io xfs_freeze mount umount python3 go dd md5sum; do
	command -v "$t" >/dev/null || { echo "$0: missing tool: $t" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/xfsfree-bench-extract.XXXXXX")
MNT=""
FROZEN=""
cleanup() {
	set +e
	exec 3<&- 2>/dev/null
	[[ -n $FROZEN ]] && xfs_freeze -u "$FROZEN"
	if [[ -n $MNT ]] && mountpoint -q "$MNT"; then umount "$MNT"; fi
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

BIN=$WORK/xfsfree
go build -o "$BIN" ./cmd/xfsfree
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$(now)"; }
dropcaches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# --- the snapshot ------------------------------------------------------------------------------
LIVE=$WORK/live.img
SNAP=$WORK/snap.img
truncate -s 4G "$LIVE"
mkfs.xfs -q -f "$LIVE"
MNT=$WORK/mnt
mkdir -p "$MNT"
mount -o loop "$LIVE" "$MNT"
xfs_io -f -c "pwrite -q -S 0x5a -b 8m 0 ${SIZE}m" -c fsync "$MNT/big"
INO=$(stat -c %i "$MNT/big")
WANT=$(md5sum <"$MNT/big" | cut -d' ' -f1)
exec 3<"$MNT/big"
rm "$MNT/big"
sync -f "$MNT"
xfs_freeze -f "$MNT"
FROZEN=$MNT
cp --sparse=always "$LIVE" "$SNAP"
xfs_freeze -u "$MNT"
FROZEN=""
exec 3<&-
umount "$MNT"
MNT=""
rm -f "$LIVE"

# The orphan's extents, merged where contiguous on disk, as byte offsets: "fileoff devoff length".
SB=$(xfs_db -r -c 'sb 0' -c 'p blocksize agblocks agblklog' "$SNAP")
EXTENTS=$(xfs_db -r -c "inode $INO" -c 'bmap -d' "$SNAP" | python3 -c '
import re, sys
sb = dict(re.findall(r"(\w+) = (\d+)", sys.argv[1]))
bs, agblocks, agblklog = int(sb["blocksize"]), int(sb["agblocks"]), int(sb["agblklog"])
runs = []
for m in re.finditer(r"data offset (\d+) startblock (\d+) \(\d+/\d+\) count (\d+) flag 0", sys.stdin.read()):
    off, fsb, n = int(m[1]), int(m[2]), int(m[3])
    dev = ((fsb >> agblklog) * agblocks + (fsb & ((1 << agblklog) - 1))) * bs
    if runs and runs[-1][0] + runs[-1][2] == off * bs and runs[-1][1] + runs[-1][2] == dev:
        runs[-1][2] += n * bs
    else:
        runs.append([off * bs, dev, n * bs])
for r in runs:
    print(*r)
' "$SB")
NEXT=$(echo "$EXTENTS" | wc -l)
echo "orphan: inode $INO, $SIZE MiB in $NEXT run(s) of contiguous extents; image $(du -h --apparent-size "$SNAP" | cut -f1) (sparse)"

ddextents() { # ddextents OUT: dd every run of extents into OUT (or /dev/null)
	local out=$1 foff doff len
	while read -r foff doff len; do
		if [[ $out == /dev/null ]]; then
			dd if="$SNAP" of=/dev/null bs=8M iflag=direct,skip_bytes,count_bytes skip="$doff" count="$len" status=none
		else
			dd if="$SNAP" of="$out" bs=8M iflag=direct,skip_bytes,count_bytes oflag=seek_bytes conv=notrunc \
				skip="$doff" seek="$foff" count="$len" status=none
		fi
	done <<<"$EXTENTS"
}

declare -A T
run() { # run NAME: one timed run, output checked
	local name=$1 out=$WORK/out t0 got
	rm -f "$out"
	dropcaches
	t0=$(now)
	case $name in
	xfsfree-file) "$BIN" extract -q --ino "$INO" -o "$out" "$SNAP" >/dev/null ;;
	dd-file)
		truncate -s "${SIZE}M" "$out"
		ddextents "$out"
		sync "$out"
		;;
	xfsfree-stream) "$BIN" extract -q --ino "$INO" -o - "$SNAP" >/dev/null ;;
	dd-stream) ddextents /dev/null ;;
	esac
	T[$name]+="$(since "$t0") "
	if [[ $name == *-file ]]; then
		got=$(md5sum <"$out" | cut -d' ' -f1)
		[[ $got == "$WANT" ]] || { echo "$0: $name: md5 $got, want $WANT" >&2; exit 1; }
	fi
}
# The stream runs are checked once, outside the timing.
got=$("$BIN" extract -q --ino "$INO" -o - "$SNAP" | md5sum | cut -d' ' -f1)
[[ $got == "$WANT" ]] || { echo "$0: xfsfree -o -: md5 $got, want $WANT" >&2; exit 1; }

for ((i = 0; i < RUNS; i++)); do
	for name in xfsfree-file dd-file xfsfree-stream dd-stream; do
		run "$name"
	done
done

median() { python3 -c "import sys, statistics; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.3f}')" "$@"; }
printf '%-15s %-30s %8s %10s\n' what "runs (s)" median "MiB/s"
for name in xfsfree-file dd-file xfsfree-stream dd-stream; do
	# shellcheck disable=SC2086
	m=$(median ${T[$name]})
	printf '%-15s %-30s %8s %10.0f\n' "$name" "${T[$name]}" "$m" "$(python3 -c "print($SIZE / $m)")"
done
# shellcheck disable=SC2086
for kind in file stream; do
	x=$(median ${T[xfsfree-$kind]})
	d=$(median ${T[dd-$kind]})
	echo "ratio $kind: xfsfree/dd = $(python3 -c "print(f'{$x / $d:.2f}')") (time; < 1: xfsfree is faster)"
done
