// Package fieldfuzz is the issue-7 fuzz campaign, in the style of xfstests' fuzz groups: it
// changes one field of one on-disk structure with xfs_db (`fuzz -d FIELD VERB`, the CRC kept
// valid), runs the xfsfree binary on the result as a user would, and judges what it did with the
// real tools.
//
// It owns enumerating the fields (from xfs_db's own `print` output: fields.go), finding the
// structures in an orphan image (superblock, AG headers, btree roots and leaves, orphans' inode
// cores: targets.go), applying a fuzz and judging a log with xfsprogs (fuzz.go), running one case
// (case.go), planning and sampling a campaign (campaign.go) and reporting it (report.go).
//
// A case passes when no xfsfree command panics, hangs or exits other than 0 or 1; the read-only
// commands (info, scan, check) change no byte; the log is clean (xfs_logprint, xfs_repair -n)
// after every command that wrote; and plain xfs_repair (no -n, no -L) succeeds on the result
// whenever it succeeded on the fuzzed image before xfsfree touched it.
//
// TestCampaign runs a seeded sample (see its doc for the environment variables);
// scripts/fuzz-fields.sh runs every case.
package fieldfuzz
