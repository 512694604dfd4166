#!/usr/bin/env bash
# bench-scan.sh: how long `xfsfree scan` takes against xfs_db reading the same btrees, on an image
# with over a million inodes, and xfs_repair -n for reference. All on the same image, in one run.
#
# Usage: scripts/bench-scan.sh [FILES]     (FILES: empty files to create, default 1000000)
#
# Builds a sparse 4-AG image in a temporary directory under $TMPDIR (removed at exit), fills it
# through a loop mount with FILES empty files spread over four directories (one per AG), unmounts
# it, then runs, each RUNS times (default 3) with the page cache dropped before every run:
#   xfsfree   xfsfree scan --json IMG >/dev/null
#   xfs_db    xfs_db -r, printing every inobt and finobt block of every AG, level by level from
#             the AGI roots (one xfs_db run per level, all AGs and both btrees in it)
#   repair    xfs_repair -n IMG
# and prints each run's seconds, the median, and the ratio xfsfree/xfs_db.
# Needs root, a loop device, xfsprogs, python3 and go.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${1:-1000000}
RUNS=${RUNS:-3}
AGS=4

[[ $(id -u) -eq 0 ]] || { echo "$0: must run as root (loop mount, drop_caches)" >&2; exit 1; }
for t in mkfs.xfs xfs_db xfs_repair mount umount python3 go; do
	command -v "$t" >/dev/null || { echo "$0: missing tool: $t" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/xfsfree-bench.XXXXXX")
MNT=""
cleanup() {
	set +e
	if [[ -n $MNT ]] && mountpoint -q "$MNT"; then umount "$MNT"; fi
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

IMG=$WORK/bench.img
BIN=$WORK/xfsfree
go build -o "$BIN" ./cmd/xfsfree

now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$(now)"; }

# --- the image ---------------------------------------------------------------------------------
t0=$(now)
truncate -s 8G "$IMG"
mkfs.xfs -q -f -d agcount=$AGS -i maxpct=50 "$IMG"
MNT=$WORK/mnt
mkdir -p "$MNT"
mount -o loop,noatime "$IMG" "$MNT"
# One directory per AG (XFS puts each new top-level directory in the next AG), filled in parallel
# with mknod(2): one system call a file.
cat >"$WORK/fill.py" <<'PY'
import os, stat, sys
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
mode = stat.S_IFREG | 0o644
mknod = os.mknod
for i in range(n):
    mknod(f"{d}/{i}", mode)
PY
per=$(( (FILES + AGS - 1) / AGS ))
pids=()
for a in $(seq 0 $((AGS - 1))); do
	python3 "$WORK/fill.py" "$MNT/d$a" "$per" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
umount "$MNT"
MNT=""
icount=$(xfs_db -r -c 'sb 0' -c 'p icount' "$IMG" | awk '{print $3}')
echo "image: $IMG, $(du -h "$IMG" | cut -f1) allocated, $AGS AGs, icount $icount; built in $(since "$t0") s"
for a in $(seq 0 $((AGS - 1))); do
	xfs_db -r -c "agi $a" -c 'p count level free_level' "$IMG" | tr '\n' ' ' | sed "s/^/  AG $a: /"; echo
done
((icount >= FILES)) || { echo "$0: only $icount inodes" >&2; exit 1; }

# --- the equivalent xfs_db walk ----------------------------------------------------------------
cat >"$WORK/dbwalk.py" <<'PY'
# Print every inobt and finobt block of every AG with xfs_db, level by level from the AGI roots:
# what xfsfree scan reads of the btrees. One xfs_db run per level for all AGs and both btrees.
import re, subprocess, sys
img = sys.argv[1]
def db(cmds):
    args = ["xfs_db", "-r"]
    for c in cmds:
        args += ["-c", c]
    return subprocess.run(args + [img], check=True, capture_output=True, text=True).stdout
sb = dict(re.findall(r"^(\w+) = (\S+)", db(["sb 0", "p agcount agblklog"]), re.M))
agcount, agblklog = int(sb["agcount"]), int(sb["agblklog"])
cmds = []
for a in range(agcount):
    cmds += [f"agi {a}", "p root level free_root free_level"]
vals = [int(v) for v in re.findall(r"^\w+ = (\d+)", db(cmds), re.M)]
trees = []   # [agno, type, levels left, blocks at this level]
for a in range(agcount):
    root, level, froot, flevel = vals[4 * a:4 * a + 4]
    trees.append([a, "inobt", level, [root]])
    trees.append([a, "finobt", flevel, [froot]])
blocks = 0
while trees:
    cmds = []
    for a, typ, lvl, bs in trees:
        for b in bs:
            cmds += [f"fsblock {(a << agblklog) | b}", f"type {typ}", "p"]
            blocks += 1
    out = db(cmds)
    ptrs = iter(re.findall(r"^ptrs\[[^]]*\] = (.*)$", out, re.M))
    nxt = []
    for a, typ, lvl, bs in trees:
        if lvl > 1:
            kids = []
            for _ in bs:
                kids += [int(p.split(":")[1]) for p in next(ptrs).split()]
            nxt.append([a, typ, lvl - 1, kids])
    trees = nxt
print(blocks, file=sys.stderr)
PY
nblocks=$(python3 "$WORK/dbwalk.py" "$IMG" 2>&1 >/dev/null)
echo "xfs_db walk: $nblocks inobt+finobt blocks"

# --- timings -----------------------------------------------------------------------------------
declare -A T
run() { # name command...
	local name=$1; shift
	local s=""
	for i in $(seq 1 "$RUNS"); do
		sync
		echo 3 >/proc/sys/vm/drop_caches
		local t=$(now)
		"$@" >/dev/null 2>&1 || { echo "$0: $name failed: $*" >&2; "$@" >&2 || true; exit 1; }
		s="$s $(since "$t")"
	done
	T[$name]=$s
	printf '%-9s cold runs (s):%s  median %s\n' "$name" "$s" "$(median $s)"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run xfsfree "$BIN" scan --json "$IMG"
run xfs_db python3 "$WORK/dbwalk.py" "$IMG"
run repair xfs_repair -n "$IMG"

python3 - "$(median ${T[xfsfree]})" "$(median ${T[xfs_db]})" "$(median ${T[repair]})" <<'PY'
import sys
x, d, r = map(float, sys.argv[1:])
print(f"ratio xfsfree/xfs_db = {x / d:.3f}   (xfsfree/xfs_repair -n = {x / r:.3f})")
PY
