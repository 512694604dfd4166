#!/usr/bin/env bash
# The project's test command (README, .ci/run): formatting, vet, go mod tidy, the race-enabled
# test suite against real images (needs root, loop devices and xfsprogs; tests
# that lack them skip with a reason), then a short run of every fuzz target.
# FUZZTIME (default 100000x: executions, not seconds) sets how long each fuzz
# target runs; FUZZTIME=0 skips fuzzing. A count, because a duration races Go
# 1.26's fuzz coordinator at the deadline (golang/go#75804: a spurious
# "context deadline exceeded" failure with no failing input).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-100000x}

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
if ! go mod tidy -diff >/tmp/xfsfree-tidy.log 2>&1; then
	echo "go mod tidy would change go.mod/go.sum:"; cat /tmp/xfsfree-tidy.log; exit 1
fi
go build -o /dev/null ./cmd/xfsfree
go test -race -count=1 -timeout 40m ./...

if [ "$fuzztime" != "0" ]; then
	for pkg in $(go list ./...); do
		for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
			echo "fuzz $pkg $f ($fuzztime)"
			go test -run='^$' -fuzz="^${f}\$" -fuzztime="$fuzztime" -fuzzminimizetime=200x "$pkg" >/tmp/xfsfree-fuzz.log 2>&1 || {
				cat /tmp/xfsfree-fuzz.log; exit 1; }
		done
	done
fi
echo "all checks passed"
