#!/usr/bin/env bash
# bench-free.sh: how long `xfsfree free --orphans` takes against the kernel freeing the same
# orphans at mount, on the same frozen-snapshot image, in one run.
#
# Usage: scripts/bench-free.sh [ORPHANS]     (default 100000)
#
# Builds a sparse 4-AG image in a temporary directory under $TMPDIR (removed at exit) and makes a
# frozen snapshot of it with ORPHANS orphaned inodes, the way an LVM or cloud snapshot of a live
# system looks: through a loop mount, holder processes (each under the open-files limit; four
# directories, one per AG) create ORPHANS empty files, keep them open and unlink them; then sync,
# xfs_freeze -f, copy the image, xfs_freeze -u, end the holders, unmount. The copy's log is dirty and its AGI unlinked
# lists hold the orphans. From it:
#   A   `xfsfree recover` (log replayed, the orphans left on the lists), then, timed:
#       `xfsfree free --orphans --stats --json A`
#   K   the snapshot itself (dirty log: a kernel mount frees orphans only after a log recovery;
#       on a clean log it skips them), timed: `mount -o loop K MNT && umount MNT` — the kernel's
#       time includes its log replay and the unmount's writeback
# with the page cache dropped before each. It prints both times, the ratio xfsfree/kernel,
# xfsfree's I/O stats, and checks that both results pass xfs_repair -n, have no orphan left, and
# have equal icount, ifree and fdblocks.
# Needs root, a loop device, xfsprogs, python3 and go.
set -euo pipefail
cd "$(dirname "$0")/.."
ORPHANS=${1:-100000}
AGS=4

[[ $(id -u) -eq 0 ]] || { echo "$0: must run as root (loop mount, freeze, drop_caches)" >&2; exit 1; }
for t in mkfs.xfs xfs_db xfs_repair xfs_freeze mount umount mountpoint python3 go; do
	command -v "$t" >/dev/null || { echo "$0: missing tool: $t" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/xfsfree-bench-free.XXXXXX")
MNT=$WORK/mnt
FROZEN=""
HOLDERS=()
cleanup() {
	local rc=$?
	set +e
	[[ -n $FROZEN ]] && xfs_freeze -u "$FROZEN"
	for p in "${HOLDERS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	mountpoint -q "$MNT" && umount "$MNT"
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BIN=$WORK/xfsfree
go build -tags testhooks -o "$BIN" ./cmd/xfsfree # testhooks: XFSFREE_CPUPROFILE

now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$(now)"; }
sbfield() { xfs_db -r -c 'sb 0' -c "p $2" "$1" | awk '{print $3}'; }
orphans_left() { # IMG: inodes in use as bucket heads, over all AGs
	local cmds=() a
	for a in $(seq 0 $((AGS - 1))); do cmds+=(-c "agi $a" -c 'p unlinked'); done
	xfs_db -r "${cmds[@]}" "$1" | { grep -o '[0-9]*:[0-9]*' || true; } | wc -l
}
repair() { # IMG WHAT
	local out
	if ! out=$(xfs_repair -n -f "$1" 2>&1); then
		echo "$0: xfs_repair -n fails on $2:" >&2
		echo "$out" | tail -30 >&2
		exit 1
	fi
}

# --- the snapshot ------------------------------------------------------------------------------
t0=$(now)
# Open files per process are capped by the hard RLIMIT_NOFILE (raising it needs CAP_SYS_RESOURCE):
# enough holders that each stays under it.
per=$(( (ORPHANS + AGS - 1) / AGS ))
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
max=$((hard - 64))
nh=$(( (per + max - 1) / max )) # holders per AG
each=$(( (per + nh - 1) / nh ))
IMG=$WORK/live.img
truncate -s 4G "$IMG"
mkfs.xfs -q -f -d agcount=$AGS "$IMG"
mkdir -p "$MNT"
mount -o loop "$IMG" "$MNT"
# XFS puts each new top-level directory in the next AG, and files near their directory.
for a in $(seq 0 $((AGS - 1))); do mkdir "$MNT/d$a"; done
# hold.py DIR PREFIX N READY: create N empty files in DIR, keep them open, unlink them, say so in
# READY, and wait to be killed.
cat >"$WORK/hold.py" <<'PY'
import os, resource, signal, sys
d, prefix, n, ready = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
fds = []
flags = os.O_CREAT | os.O_EXCL | os.O_RDWR
for i in range(n):
    fds.append(os.open(f"{d}/{prefix}{i}", flags, 0o644))
for i in range(n):
    os.unlink(f"{d}/{prefix}{i}")
with open(ready, "w") as f:
    f.write(str(n))
signal.pause()
PY
left=$ORPHANS
for a in $(seq 0 $((AGS - 1))); do
	for h in $(seq 1 $nh); do
		n=$((each < left ? each : left))
		((n > 0)) || continue
		left=$((left - n))
		python3 "$WORK/hold.py" "$MNT/d$a" "h$h-" "$n" "$WORK/ready${#HOLDERS[@]}" &
		HOLDERS+=($!)
	done
done
for i in "${!HOLDERS[@]}"; do
	while [[ ! -s $WORK/ready$i ]]; do
		kill -0 "${HOLDERS[i]}" 2>/dev/null || { echo "$0: holder $i died" >&2; exit 1; }
		sleep 0.2
	done
done
sync
xfs_freeze -f "$MNT"
FROZEN=$MNT
SNAP=$WORK/snap.img
cp --sparse=always "$IMG" "$SNAP"
xfs_freeze -u "$MNT"
FROZEN=""
nholders=${#HOLDERS[@]}
for p in "${HOLDERS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
HOLDERS=()
umount "$MNT"
rm -f "$IMG"
n=$(orphans_left "$SNAP")
echo "snapshot: $ORPHANS orphans held by $nholders processes in $AGS AGs, $((n)) buckets in use, $(du -h "$SNAP" | cut -f1) allocated; built in $(since "$t0") s"

A=$WORK/a.img
K=$WORK/k.img
cp --sparse=always "$SNAP" "$A"
mv "$SNAP" "$K"
t=$(now)
"$BIN" recover "$A" >/dev/null
echo "xfsfree recover (untimed below): $(since "$t") s"
found=$("$BIN" scan --json "$A" | python3 -c 'import json,sys; print(json.load(sys.stdin)["orphans"])')
((found >= ORPHANS)) || { echo "$0: scan finds $found orphans, want $ORPHANS" >&2; exit 1; }
echo "orphans on the unlinked lists after recover: $found"
if [[ -n ${KEEP:-} ]]; then cp --sparse=always "$A" "$KEEP"; echo "kept the recovered snapshot as $KEEP"; fi

# --- timings -----------------------------------------------------------------------------------
sync
echo 3 >/proc/sys/vm/drop_caches
t=$(now)
"$BIN" free --orphans --stats --json "$A" >"$WORK/free.json"
TX=$(since "$t")
sync
echo 3 >/proc/sys/vm/drop_caches
t=$(now)
mount -o loop "$K" "$MNT"
umount "$MNT"
TK=$(since "$t")

python3 - "$WORK/free.json" "$TX" "$TK" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
tx, tk = float(sys.argv[2]), float(sys.argv[3])
rep, st = r.get("report", r), r.get("stats") or {}
print(f"xfsfree free --orphans      {tx:8.3f} s   ({rep['inodes_freed']} inodes, {rep['chunks_freed']} chunks, "
      f"{rep['transactions']} transactions)")
print(f"kernel mount+umount         {tk:8.3f} s   (includes the kernel's log replay)")
print(f"ratio xfsfree/kernel = {tx / tk:.3f}")
mib = 1 << 20
print(f"xfsfree I/O: {st['device_reads']} reads ({st['bytes_read'] / mib:.1f} MiB), "
      f"{st['device_writes']} writes ({st['bytes_written'] / mib:.1f} MiB), {st['syncs']} syncs, "
      f"log {st['log_bytes_written'] / mib:.1f} MiB; cache {st['cache_hits']} hits, {st['cache_misses']} misses, "
      f"{st['cache_readaheads']} read ahead")
PY

# --- same result -------------------------------------------------------------------------------
repair "$A" "xfsfree's result"
repair "$K" "the kernel's result"
for img in "$A" "$K"; do
	left=$(orphans_left "$img")
	((left == 0)) || { echo "$0: $left buckets still in use in $img" >&2; exit 1; }
done
ok=1
for f in icount ifree fdblocks; do
	a=$(sbfield "$A" $f) k=$(sbfield "$K" $f)
	printf '%-9s xfsfree %-10s kernel %s\n' "$f" "$a" "$k"
	[[ $a == "$k" ]] || ok=0
done
((ok)) || { echo "$0: xfsfree and the kernel disagree" >&2; exit 1; }
echo "both pass xfs_repair -n, no orphan left, icount/ifree/fdblocks equal"
