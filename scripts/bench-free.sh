#!/usr/bin/env bash
# bench-free.sh: xfsfree against the kernel on the same frozen snapshots, in one run.
#
# Usage: scripts/bench-free.sh [CASE...]        CASE: 100k | 30k-data | 1m   (default: all three)
#        RUNS=3 KEEP=DIR PROFILE=1 scripts/bench-free.sh 100k
#
# Each case builds a sparse image in a temporary directory under $TMPDIR (removed at exit) and makes
# a frozen snapshot of it the way an LVM or cloud snapshot of a live system looks: through a loop
# mount, holder processes (each under the open-files limit; one directory per AG) create the files,
# keep them open and unlink them; then sync, xfs_freeze -f, copy the image, xfs_freeze -u, end the
# holders, unmount. The copy's log is dirty and its AGI unlinked lists hold the orphans.
#   100k      100,000 empty orphans, 4 AGs
#   30k-data  30,000 orphans holding 8 KiB each (two extents), 8 AGs, -m rmapbt=1
#   1m        1,000,000 empty orphans, 16 AGs
# Then, RUNS times (best of), on fresh copies with the page cache dropped before each:
#   xfsfree   `xfsfree clean --stats --json` (or, where this build has no clean command,
#             `xfsfree recover` then `xfsfree free --orphans --stats --json`, timed together): log
#             replay included, as the kernel's time includes its replay
#   kernel    `mount -o loop` + `umount` (replay, orphan processing, unmount writeback)
# It prints per case the best times, the ratio xfsfree/kernel, xfsfree's syncs, log bytes, bytes
# written and read, its peak RSS (/usr/bin/time), and checks that both results pass
# xfs_repair -n, have no orphan left, and have equal icount, ifree and fdblocks.
# KEEP=DIR keeps each snapshot as DIR/CASE.img; PROFILE=1 writes a CPU profile of the last
# xfsfree run to DIR/CASE.prof (or $TMPDIR) and prints its top entries.
# Needs root, a loop device, xfsprogs, python3, go and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
CASES=("$@")
((${#CASES[@]})) || CASES=(100k 30k-data 1m)

[[ $(id -u) -eq 0 ]] || { echo "$0: must run as root (loop mount, freeze, drop_caches)" >&2; exit 1; }
for t in mkfs.xfs xfs_db xfs_repair xfs_freeze mount umount mountpoint python3 go /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "$0: missing tool: $t" >&2; exit 1; }
done

[[ -z ${KEEP:-} ]] || mkdir -p "$KEEP"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/xfsfree-bench-free.XXXXXX")
MNT=$WORK/mnt
mkdir -p "$MNT"
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
HAVE_CLEAN=0
"$BIN" clean --help >/dev/null 2>&1 && HAVE_CLEAN=1

now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$(now)"; }
sbfield() { xfs_db -r -c 'sb 0' -c "p $2" "$1" | awk '{print $3}'; }
orphans_left() { # IMG AGS: unlinked buckets in use
	local cmds=() a
	for a in $(seq 0 $(($2 - 1))); do cmds+=(-c "agi $a" -c 'p unlinked'); done
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
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# hold.py DIR PREFIX N BYTES READY: create N files of BYTES bytes (two extents: the halves written
# apart, each synced) in DIR, keep them open, unlink them, say so in READY, wait to be killed.
cat >"$WORK/hold.py" <<'PY'
import os, resource, signal, sys
d, prefix, n, size, ready = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
fds = []
flags = os.O_CREAT | os.O_EXCL | os.O_RDWR
half = b"x" * (size // 2)
for i in range(n):
    fd = os.open(f"{d}/{prefix}{i}", flags, 0o644)
    if size:
        os.pwrite(fd, half, size)  # the second half first, past a hole
        os.fsync(fd)
        os.pwrite(fd, half, 0)
    fds.append(fd)
for i in range(n):
    os.unlink(f"{d}/{prefix}{i}")
with open(ready, "w") as f:
    f.write(str(n))
signal.pause()
PY

# snapshot CASE ORPHANS AGS BYTES SIZE MKFS_OPTS...: the frozen snapshot, as $WORK/CASE.snap
snapshot() {
	local name=$1 orphans=$2 ags=$3 bytes=$4 size=$5
	shift 5
	local t0 per hard max nh each img left a h n i
	t0=$(now)
	per=$(((orphans + ags - 1) / ags))
	hard=$(ulimit -Hn)
	[[ $hard == unlimited ]] && hard=1048576
	max=$((hard - 64))
	nh=$(((per + max - 1) / max)) # holders per AG
	each=$(((per + nh - 1) / nh))
	img=$WORK/live.img
	rm -f "$img"
	truncate -s "$size" "$img"
	mkfs.xfs -q -f -d agcount="$ags" "$@" "$img"
	mount -o loop "$img" "$MNT"
	# XFS puts each new top-level directory in the next AG, and files near their directory.
	for a in $(seq 0 $((ags - 1))); do mkdir "$MNT/d$a"; done
	left=$orphans
	HOLDERS=()
	for a in $(seq 0 $((ags - 1))); do
		for h in $(seq 1 "$nh"); do
			n=$((each < left ? each : left))
			((n > 0)) || continue
			left=$((left - n))
			python3 "$WORK/hold.py" "$MNT/d$a" "h$h-" "$n" "$bytes" "$WORK/ready${#HOLDERS[@]}" &
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
	cp --sparse=always "$img" "$WORK/$name.snap"
	xfs_freeze -u "$MNT"
	FROZEN=""
	for i in "${HOLDERS[@]}"; do kill "$i"; wait "$i" 2>/dev/null || true; done
	HOLDERS=()
	rm -f "$WORK"/ready*
	umount "$MNT"
	rm -f "$img"
	echo "$name: $orphans orphans ($bytes bytes each) in $ags AGs, mkfs.xfs $*: $(du -h "$WORK/$name.snap" | cut -f1) allocated; built in $(since "$t0") s"
	[[ -n ${KEEP:-} ]] && cp --sparse=always "$WORK/$name.snap" "$KEEP/$name.img"
	return 0
}

# xfsfree_run IMG OUT: the timed xfsfree run; its --json on OUT, "seconds rss_kb" on stdout.
xfsfree_run() {
	local img=$1 out=$2 t0 rss
	t0=$(now)
	if ((HAVE_CLEAN)); then
		/usr/bin/time -f '%M' -o "$WORK/rss" "$BIN" clean --stats --json "$img" >"$out"
		rss=$(cat "$WORK/rss")
	else
		/usr/bin/time -f '%M' -o "$WORK/rss" "$BIN" recover "$img" >/dev/null
		rss=$(cat "$WORK/rss")
		/usr/bin/time -f '%M' -o "$WORK/rss" "$BIN" free --orphans --stats --json "$img" >"$out"
		rss=$(( $(cat "$WORK/rss") > rss ? $(cat "$WORK/rss") : rss ))
	fi
	echo "$(since "$t0") $rss"
}

run_case() { # CASE ORPHANS AGS
	local name=$1 ags=$3 snap=$WORK/$1.snap best_x=999999 best_k=999999 rss_x=0 t r a k i f ok
	for i in $(seq 1 "$RUNS"); do
		a=$WORK/$name.a.img
		k=$WORK/$name.k.img
		cp --sparse=always "$snap" "$a"
		cp --sparse=always "$snap" "$k"
		drop
		[[ -n ${PROFILE:-} && $i == "$RUNS" ]] && export XFSFREE_CPUPROFILE=${KEEP:-$WORK}/$name.prof
		read -r t r < <(xfsfree_run "$a" "$WORK/$name.json")
		unset XFSFREE_CPUPROFILE
		best_x=$(python3 -c "print(min($best_x, $t))")
		((r > rss_x)) && rss_x=$r
		drop
		local t0
		t0=$(now)
		mount -o loop "$k" "$MNT"
		umount "$MNT"
		t=$(since "$t0")
		best_k=$(python3 -c "print(min($best_k, $t))")
		if ((i < RUNS)); then rm -f "$a" "$k"; fi
	done
	python3 - "$WORK/$name.json" "$name" "$best_x" "$best_k" "$rss_x" "$RUNS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
name, tx, tk, rss, runs = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
st = r.get("stats") or {}
free = r.get("free", r)
inodes = free.get("orphans_freed", free.get("inodes_freed"))
mib = 1 << 20
print(f"{name}: xfsfree {tx:.3f} s, kernel mount+umount {tk:.3f} s (best of {runs}): ratio xfsfree/kernel = {tx / tk:.3f}")
print(f"{name}: xfsfree freed {inodes} inodes, {free.get('chunks_freed')} chunks, {free.get('transactions')} transactions "
      f"in {st.get('checkpoints')} checkpoints; {st.get('syncs')} syncs, log {st.get('log_bytes_written', 0) / mib:.1f} MiB, "
      f"written {st.get('bytes_written', 0) / mib:.1f} MiB in {st.get('device_writes')} writes, read {st.get('bytes_read', 0) / mib:.1f} MiB; "
      f"peak RSS {rss / 1024:.0f} MiB, peak cache {st.get('peak_cache_bytes', 0) / mib:.0f} MiB")
PY
	repair "$a" "xfsfree's result"
	repair "$k" "the kernel's result"
	for i in "$a" "$k"; do
		f=$(orphans_left "$i" "$ags")
		((f == 0)) || { echo "$0: $f buckets still in use in $i" >&2; exit 1; }
	done
	ok=1
	for f in icount ifree fdblocks; do
		[[ $(sbfield "$a" $f) == "$(sbfield "$k" $f)" ]] || { ok=0; echo "$0: $name: $f xfsfree $(sbfield "$a" $f) kernel $(sbfield "$k" $f)" >&2; }
	done
	((ok)) || exit 1
	echo "$name: both pass xfs_repair -n, no orphan left, icount/ifree/fdblocks equal"
	if [[ -n ${PROFILE:-} ]]; then
		go tool pprof -top -nodecount=20 "$BIN" "${KEEP:-$WORK}/$name.prof" 2>/dev/null | sed -n '1,26p'
	fi
	rm -f "$a" "$k" "$snap"
}

for c in "${CASES[@]}"; do
	case $c in
	100k) snapshot 100k 100000 4 0 4G && run_case 100k 100000 4 ;;
	30k-data) snapshot 30k-data 30000 8 8192 4G -m rmapbt=1 && run_case 30k-data 30000 8 ;;
	1m) snapshot 1m 1000000 16 0 16G && run_case 1m 1000000 16 ;;
	*) echo "$0: unknown case $c (100k, 30k-data, 1m)" >&2; exit 2 ;;
	esac
done
