#!/usr/bin/env bash
# Prints a directory whose `node` is the Node.js that package.json's engines.node asks for (its
# major, e.g. 24 for ">=24"), for `export PATH="$(bash .ci/node.sh):$PATH"`:
#   - the node already on PATH when it is new enough;
#   - else the newest release of that major from the npm package node-linux-<arch> (the Node.js
#     project's own Linux build, republished on npm; the image's Node comes from it too), fetched
#     with `npm pack` once and cached outside the repo beside the control-plane binaries. Later
#     calls use the cache without the network and take milliseconds; remove the cache's `node/`
#     folder to take a newer patch release.
# npm itself is the one installed with the older node: it runs on whichever node is first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

major=$(sed -n 's/^ *"node": *">= *\([0-9][0-9]*\).*/\1/p' package.json | head -n 1)
[[ -n "$major" ]] || {
  echo "node.sh: no engines.node \">=N...\" in package.json" >&2
  exit 1
}
major_of() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if command -v node >/dev/null 2>&1 && (($(major_of node) >= major)); then
  dirname "$(command -v node)"
  exit 0
fi

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *)
    echo "node.sh: no Node.js $major package for $(uname -m); install Node.js $major or later" >&2
    exit 1
    ;;
esac
cache=${KUBENOVA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubenova}/node
mkdir -p "$cache"

newest_cached() {
  local d best=
  for d in "$cache/node-v$major".*-linux-"$arch"; do
    [[ -x "$d/bin/node" ]] || continue
    if [[ -z "$best" ]] || [[ "$(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n 1)" == "$d" ]]; then
      best=$d
    fi
  done
  [[ -n "$best" ]] && echo "$best/bin"
}

if found=$(newest_cached); then
  echo "$found"
  exit 0
fi
command -v npm >/dev/null 2>&1 || {
  echo "node.sh: npm is needed to fetch Node.js $major (node-linux-$arch)" >&2
  exit 1
}
# Two CI runs starting together fetch it once.
exec 9>"$cache/.lock"
flock 9
if found=$(newest_cached); then
  echo "$found"
  exit 0
fi
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "node.sh: fetching Node.js $major (npm pack node-linux-$arch@$major)" >&2
# A range makes npm pack take the newest release that satisfies it.
tgz=$(cd "$work" && npm pack "node-linux-$arch@$major" --silent --no-audit --no-fund | tail -n 1)
tar -xzf "$work/$tgz" -C "$work" package/bin/node package/LICENSE
version=$("$work/package/bin/node" --version)
if [[ "$version" != "v$major."* ]]; then
  echo "node.sh: node-linux-$arch@$major holds Node.js $version" >&2
  exit 1
fi
mv "$work/package" "$cache/node-$version-linux-$arch"
echo "$cache/node-$version-linux-$arch/bin"
