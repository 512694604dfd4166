#!/usr/bin/env bash
# mkfs-fixtures.sh builds the XFS fixture images used by xfsfree's tests and benchmarks.
#
# Usage: scripts/mkfs-fixtures.sh OUTDIR [NAME...]
#
# Builds each named fixture (default: all) as a sparse raw image OUTDIR/NAME.img. Every image is
# made with mkfs.xfs on a sparse file; most are then populated through a loop mount. An image
# appears in OUTDIR only once it is complete (built in a private directory, then renamed).
#
# Needs root, loop devices, xfsprogs (mkfs.xfs, xfs_db, xfs_repair, xfs_freeze) and python3.
# Fixture names are a contract with internal/testimg; keep them in step with ALL below.
set -euo pipefail

ALL=(default bs1024 bs4096 isize1024 isize2048 sect4096 nosparse nofinobt rmapbt nrext64 crc0
	agcount1 agcount32 inobt3 orphans orphans-rmap orphans-nosparse)

usage() {
	echo "usage: $0 OUTDIR [NAME...]" >&2
	echo "fixtures: ${ALL[*]}" >&2
	exit 2
}

[[ $# -ge 1 ]] || usage
OUTDIR=$1
shift
NAMES=("$@")
[[ ${#NAMES[@]} -gt 0 ]] || NAMES=("${ALL[@]}")
for n in "${NAMES[@]}"; do
	[[ " ${ALL[*]} " == *" $n "* ]] || {
		echo "$0: unknown fixture: $n" >&2
		usage
	}
done
[[ $(id -u) -eq 0 ]] || {
	echo "$0: must run as root (loop mounts)" >&2
	exit 1
}
for tool in mkfs.xfs xfs_db xfs_repair xfs_freeze mount umount python3; do
	command -v "$tool" >/dev/null || {
		echo "$0: missing tool: $tool" >&2
		exit 1
	}
done

mkdir -p "$OUTDIR"
WORK=$(mktemp -d "$OUTDIR/.build.XXXXXX")
MOUNTS=()   # mount points to unmount on exit, innermost last
FROZEN=""   # a mount point currently frozen
HOLDER=""   # pid of the process holding orphans open

cleanup() {
	local rc=$?
	set +e
	[[ -n $FROZEN ]] && xfs_freeze -u "$FROZEN" 2>/dev/null
	if [[ -n $HOLDER ]]; then
		kill "$HOLDER" 2>/dev/null
		wait "$HOLDER" 2>/dev/null
	fi
	local i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		# mount -o loop sets autoclear: the loop device is detached by the unmount.
		mountpoint -q "${MOUNTS[i]}" && umount "${MOUNTS[i]}"
	done
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "mkfs-fixtures: $*" >&2; }

# ---- python helpers -----------------------------------------------------------------------------

# populate.py DIR BLOCKSIZE: a little of everything an inode can hold.
cat >"$WORK/populate.py" <<'EOF'
import os, sys
root, bs = sys.argv[1], int(sys.argv[2])

def write(path, data=b""):
    with open(path, "wb") as f:
        f.write(data)

os.makedirs(root, exist_ok=True)
os.chdir(root)
# Several inode chunks: 300 empty files in one directory (leaf/node-format directory).
os.mkdir("many")
for i in range(300):
    write("many/f%04d" % i)
# A short-form directory, a block-format directory.
os.mkdir("sfdir")
for i in range(3):
    write("sfdir/s%d" % i, b"x")
os.mkdir("blockdir")
for i in range(40):
    write("blockdir/entry-with-a-longer-name-%03d" % i)
# Extents-format data forks: one extent, a few extents.
write("one-extent", b"\xab" * (16 * bs))
write("small", b"hello, xfs\n")
# A btree-format data fork: every other block of a sparse file written, inside EOF so that
# speculative preallocation does not bridge the holes. 400 extents exceed any inode's literal area.
fd = os.open("btree-file", os.O_CREAT | os.O_WRONLY, 0o644)
os.ftruncate(fd, 2 * 400 * bs)
for i in range(400):
    os.pwrite(fd, b"\xcd" * bs, 2 * i * bs)
os.fsync(fd)
os.close(fd)
# Symlinks: local (inline) and remote (longer than the literal area).
os.symlink("small", "short-link")
os.symlink("/" + "/".join(["long-symlink-component-%02d" % i for i in range(36)]), "long-link")
# Extended attributes: local-format attr fork, and extents-format (a remote value).
write("xattr-local", b"a")
os.setxattr("xattr-local", "user.small", b"v" * 16)
os.setxattr("xattr-local", "trusted.t", b"t")
write("xattr-remote", b"b")
os.setxattr("xattr-remote", "user.big", b"\x5a" * (16 * 1024))
os.setxattr("xattr-remote", "user.small", b"s")
# An attr fork of many leaf blocks.
write("xattr-many", b"c")
for i in range(300):
    os.setxattr("xattr-many", "user.attr-%04d" % i, b"%032d" % i)
# Special files and a hard link.
os.mkfifo("fifo")
os.mknod("chardev", 0o600 | 0o020000, os.makedev(1, 3))
os.link("small", "small-hardlink")
os.sync()
EOF

# orphans.py DIR BLOCKSIZE: the files that become orphans, one of each kind, plus many empty files
# (whole chunks of orphans, and bucket chains longer than one).
cat >"$WORK/orphans.py" <<'EOF'
import os, sys
root, bs = sys.argv[1], int(sys.argv[2])

def write(path, data=b""):
    with open(path, "wb") as f:
        f.write(data)

os.makedirs(root)
os.chdir(root)
write("empty")
write("one-extent", b"\x11" * (8 * bs))
write("inline-small", b"x")
fd = os.open("btree-file", os.O_CREAT | os.O_WRONLY, 0o644)
os.ftruncate(fd, 2 * 2000 * bs)
for i in range(2000):
    os.pwrite(fd, b"\x22" * bs, 2 * i * bs)
os.close(fd)
os.mkdir("dir-had-entries")
for i in range(100):
    write("dir-had-entries/e%03d" % i)
os.mkdir("empty-dir")
os.symlink("empty", "short-link")
os.symlink("/" + "/".join(["long-symlink-component-%02d" % i for i in range(36)]), "long-link")
write("xattr-local", b"a")
os.setxattr("xattr-local", "user.small", b"v" * 16)
write("xattr-remote", b"b")
os.setxattr("xattr-remote", "user.big", b"\x5a" * (16 * 1024))
os.mkfifo("fifo")
os.mkdir("chunk")
for i in range(200):
    write("chunk/f%03d" % i)
os.sync()
EOF

# hold.py DIR READYFILE: open everything under DIR, unlink it all (children before their directory),
# write READYFILE, then hold the files open until killed.
cat >"$WORK/hold.py" <<'EOF'
import os, resource, signal, sys, time
root, ready = sys.argv[1], sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
fds = []
for dirpath, dirnames, filenames in os.walk(root, topdown=False):
    for name in filenames + dirnames:
        p = os.path.join(dirpath, name)
        # O_PATH|O_NOFOLLOW holds a symlink (or fifo) inode itself without following or blocking.
        fds.append(os.open(p, os.O_PATH | os.O_NOFOLLOW))
        if os.path.isdir(p) and not os.path.islink(p):
            os.rmdir(p)
        else:
            os.unlink(p)
fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY))
os.rmdir(root)
with open(ready, "w") as f:
    f.write("%d\n" % len(fds))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    time.sleep(3600)
EOF

# mkmany.py DIR START COUNT: COUNT empty files, 1000 to a directory.
cat >"$WORK/mkmany.py" <<'EOF'
import os, sys
root, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(start, start + count):
    d = os.path.join(root, "d%05d" % (i // 1000))
    if i % 1000 == 0 or i == start:
        os.makedirs(d, exist_ok=True)
    os.close(os.open(os.path.join(d, "%d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
EOF

# ---- helpers ------------------------------------------------------------------------------------

# mkimg IMG SIZE MKFS-OPTIONS...: a sparse file and mkfs.xfs on it.
mkimg() {
	local img=$1 size=$2
	shift 2
	rm -f "$img"
	truncate -s "$size" "$img"
	mkfs.xfs -q -f "$@" "$img" 2>&1 |
		{ grep -Ev 'V4 filesystems are deprecated|formatted with --unsupported' >&2 || true; }
}

# mnt IMG: loop-mount IMG on a fresh directory, MNT.
mnt() {
	MNT=$(mktemp -d "$WORK/mnt.XXXXXX")
	mount -o loop "$1" "$MNT"
	MOUNTS+=("$MNT")
}

umnt() {
	umount "$1"
	unset 'MOUNTS[${#MOUNTS[@]}-1]'
	rmdir "$1"
}

blocksize() { xfs_db -r -c 'sb 0' -c 'p blocksize' "$1" | awk '{print $3}'; }

# repair IMG: xfs_repair -n must accept IMG. A single-AG filesystem has no secondary superblock to
# check the geometry against, which xfs_repair refuses unless told to trust the primary.
repair() {
	local out opts=()
	[[ $(xfs_db -r -c 'sb 0' -c 'p agcount' "$1") == "agcount = 1" ]] && opts=(-o force_geometry)
	if ! out=$(xfs_repair -n -f "${opts[@]}" "$1" 2>&1); then
		echo "$out" >&2
		echo "$0: xfs_repair -n failed on $1" >&2
		exit 1
	fi
}

# populated IMG SIZE MKFS-OPTIONS...: mkfs, mount, populate, unmount, check.
populated() {
	local img=$1
	mkimg "$@"
	local m
	mnt "$img"
	m=$MNT
	python3 "$WORK/populate.py" "$m/data" "$(blocksize "$img")"
	umnt "$m"
	repair "$img"
}

# orphaned IMG MKFS-OPTIONS...: the field snapshot of a live filesystem with deleted-but-open files.
orphaned() {
	local img=$1
	shift
	mkimg "$img" 300M -d agcount=4 "$@"
	local m bs
	bs=$(blocksize "$img")
	mnt "$img"
	m=$MNT
	python3 "$WORK/populate.py" "$m/data" "$bs"
	python3 "$WORK/orphans.py" "$m/orphans" "$bs"
	python3 "$WORK/hold.py" "$m/orphans" "$WORK/ready" &
	HOLDER=$!
	local i
	for ((i = 0; i < 600; i++)); do
		[[ -s $WORK/ready ]] && break
		kill -0 "$HOLDER" 2>/dev/null || {
			echo "$0: orphan holder died" >&2
			exit 1
		}
		sleep 0.1
	done
	[[ -s $WORK/ready ]] || {
		echo "$0: orphan holder not ready" >&2
		exit 1
	}
	log "holding $(cat "$WORK/ready") orphans open"
	rm -f "$WORK/ready"
	sync
	xfs_freeze -f "$m"
	FROZEN=$m
	cp --sparse=always "$img" "$img.snap"
	xfs_freeze -u "$m"
	FROZEN=""
	kill "$HOLDER"
	wait "$HOLDER" || true
	HOLDER=""
	umnt "$m"
	repair "$img" # the live filesystem, after the kernel freed the orphans
	mv "$img.snap" "$img"
	if ! xfs_db -r -c 'agi 0' -c 'agi 1' -c 'agi 2' -c 'agi 3' -c 'p unlinked' "$img" | grep -q '[0-9]:[0-9]'; then
		echo "$0: $img has no orphans on its AGI unlinked lists" >&2
		exit 1
	fi
}

# inobt3 IMG: an AG whose inode btree has three levels. 1k blocks hold 60 inobt records a leaf and
# 121 pointers a node; XFS shifts records into a sibling before it splits a block, so appended
# leaves end up full and the third level appears after 60*121 = 7260 records: ~7350 chunks, ~470k
# empty files, ~30 s. Files are created in batches until agi_level is 3 (freeze/thaw writes the AGI
# in place so that xfs_db sees it).
inobt3() {
	local img=$1
	mkimg "$img" 1G --unsupported -b size=1024 -i size=512 -d agcount=1
	local m level=0 n=0 batch=40000
	mnt "$img"
	m=$MNT
	while ((level < 3)); do
		((n < 800000)) || {
			echo "$0: inobt3: level $level after $n files" >&2
			exit 1
		}
		python3 "$WORK/mkmany.py" "$m/a" "$n" $((batch / 2)) &
		python3 "$WORK/mkmany.py" "$m/b" "$n" $((batch / 2))
		wait $!
		n=$((n + batch / 2))
		xfs_freeze -f "$m"
		xfs_freeze -u "$m"
		level=$(xfs_db -r -c 'agi 0' -c 'p level' "$img" | awk '{print $3}')
		log "inobt3: $((2 * n)) files, agi level $level"
		batch=10000
	done
	umnt "$m"
	repair "$img"
}

build() {
	local name=$1 img="$WORK/$1.img"
	case $name in
	default) populated "$img" 300M ;;
	bs1024) populated "$img" 300M -b size=1024 ;;
	bs4096) populated "$img" 300M -b size=4096 ;;
	isize1024) populated "$img" 300M -i size=1024 ;;
	isize2048) populated "$img" 300M -i size=2048 ;;
	sect4096) populated "$img" 300M -s size=4096 ;;
	nosparse) populated "$img" 300M -i sparse=0 ;;
	nofinobt) populated "$img" 300M -m finobt=0 ;;
	rmapbt) populated "$img" 300M -m rmapbt=1 ;;
	nrext64) populated "$img" 300M -i nrext64=1 ;;
	crc0)
		# v4: the kernel may be built without v4 support, so it is not populated.
		mkimg "$img" 300M -m crc=0
		repair "$img"
		;;
	# mkfs.xfs refuses a single AG (no redundant superblock) without --unsupported.
	agcount1) populated "$img" 300M --unsupported -d agcount=1 ;;
	agcount32) populated "$img" 4G -d agcount=32 ;;
	inobt3) inobt3 "$img" ;;
	orphans) orphaned "$img" ;;
	orphans-rmap) orphaned "$img" -m rmapbt=1 ;;
	orphans-nosparse) orphaned "$img" -i sparse=0 ;;
	esac
	mv -f "$img" "$OUTDIR/$name.img"
}

for n in "${NAMES[@]}"; do
	start=$SECONDS
	build "$n"
	log "$n: $OUTDIR/$n.img ($((SECONDS - start))s)"
done
