#!/usr/bin/env bash
# fuzz-fields.sh runs the whole issue-7 fuzz campaign (internal/fieldfuzz): every field of the
# superblock, the last AG's AGI, AGF and AGFL, the inobt/finobt/bnobt/cntbt/rmapbt roots (and a
# leaf where a tree has one) and one orphan inode core of each kind, with each of xfs_db's fuzz
# verbs (CRC kept valid), on a recovered orphan image and on a dirty-log snapshot; runs xfsfree
# on each as a user would, and judges it with xfs_logprint and xfs_repair.
#
# Usage: scripts/fuzz-fields.sh [OUTDIR]
#
# Writes OUTDIR/report.txt (counts per structure and image, failures by field, then every failed
# case in full) and OUTDIR/test.log (the test's output), prints the counts, and exits 0 only if no
# case failed. OUTDIR defaults to a new directory under $TMPDIR. The fuzzed images are temporary
# and removed as the run goes.
#
# Environment: JOBS (cases at a time, default 2), FIELDFUZZ_BIN (test this binary instead of one
# built from this checkout), FIELDFUZZ_RUN (a regexp on case names, image:target:field:verb),
# FIELDFUZZ_TIMEOUT (per xfsfree command, default 60s); see internal/fieldfuzz/campaign_test.go.
# Needs root, xfsprogs (xfs_db, xfs_repair, xfs_logprint) and zstd.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d "${TMPDIR:-/tmp}/xfsfree-fuzz-fields.XXXXXX")}
mkdir -p "$out"
jobs=${JOBS:-2}

echo "fuzz-fields: report in $out/report.txt, test output in $out/test.log"
start=$SECONDS
# The test binary is run directly rather than through go test, which would hold its output (the
# progress lines on stderr) until the end.
go test -c -o "$out/fieldfuzz.test" ./internal/fieldfuzz
rc=0
(cd internal/fieldfuzz &&
	FIELDFUZZ_CASES=${FIELDFUZZ_CASES:-all} FIELDFUZZ_REPORT="$out/report.txt" FIELDFUZZ_PROGRESS=1 \
		"$out/fieldfuzz.test" -test.count=1 -test.timeout=0 -test.parallel="$jobs" -test.run='^TestCampaign$' \
		>"$out/test.log") || rc=$?
rm -f "$out/fieldfuzz.test"
if [[ ! -s $out/report.txt ]]; then
	echo "fuzz-fields: no report; the campaign did not run (go test exit $rc):" >&2
	tail -n 30 "$out/test.log" >&2
	exit 1
fi
# The counts: the report up to its list of targets.
awk '/^targets \(/ { exit } { print }' "$out/report.txt"
echo "fuzz-fields: $((SECONDS - start)) s; failures by field and every failed case: $out/report.txt"
exit "$rc"
