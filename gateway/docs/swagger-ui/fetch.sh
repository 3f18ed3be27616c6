#!/usr/bin/env bash
# Fetches the pinned swagger-ui-dist from npm, checks the files /docs serves against
# SHA256SUMS (the sums of npm's files) and puts them beside this script: run it and
# `git status` shows nothing, or the vendored files are not what npm serves for this
# version. The bundle is committed gzipped (gzip -n -9, so the same bytes every time),
# being over the repository's 1 MiB a file; the gateway serves it compressed to clients
# that accept gzip and decompressed to the others.
# To move to another version: change version below, run with --write-sums, and review
# the diff (and the page, in TestDocsInBrowser).
set -euo pipefail
version=5.36.0
files=(swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE)
gzipped=swagger-ui-bundle.js

here=$(cd "$(dirname "$0")" && pwd)
write_sums=false
for arg in "$@"; do
  case $arg in
    --write-sums) write_sums=true ;;
    *) echo "fetch.sh: unknown argument $arg (want --write-sums)" >&2; exit 2 ;;
  esac
done
command -v npm >/dev/null || { echo "fetch.sh: npm is not on PATH" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# npm pack checks the tarball against the registry's integrity hash.
(cd "$tmp" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar -xzf "swagger-ui-dist-$version.tgz")

cd "$tmp/package"
if $write_sums; then
  sha256sum "${files[@]}" >"$here/SHA256SUMS"
fi
# Checked before anything is copied: files that do not match never replace the ones
# committed.
sha256sum --check --strict --quiet "$here/SHA256SUMS" ||
  { echo "fetch.sh: swagger-ui-dist $version from npm does not match SHA256SUMS" >&2; exit 1; }
for f in "${files[@]}"; do
  if [ "$f" = "$gzipped" ]; then
    gzip -n -9 <"$f" >"$here/$f.gz"
    rm -f "$here/$f"
  else
    cp "$f" "$here/$f"
  fi
done
echo "fetch.sh: swagger-ui-dist $version matches SHA256SUMS"
