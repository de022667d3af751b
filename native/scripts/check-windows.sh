#!/usr/bin/env bash
# Compiles the addon's sources as Windows code with mingw-w64 (-fsyntax-only),
# against the running Node's own headers, so the AF_HYPERV branch cannot rot
# on machines that never build it. Sources and defines come from binding.gyp
# (common + OS=='win'), so this check and the real Windows build agree.
#
# Needs the Debian/Ubuntu package g++-mingw-w64-x86-64-posix. Without the
# compiler the check is skipped with a warning, unless
# GCS_REQUIRE_WINDOWS_CHECK=1 (CI), which makes that an error.
set -euo pipefail

native="$(cd "$(dirname "$0")/.." && pwd)"
cxx="${GCS_WINDOWS_CXX:-x86_64-w64-mingw32-g++}"

if ! command -v "$cxx" >/dev/null 2>&1; then
  message="check-windows: $cxx not found (apt-get install -y g++-mingw-w64-x86-64-posix)"
  if [ "${GCS_REQUIRE_WINDOWS_CHECK:-0}" = "1" ]; then
    echo "$message" >&2
    exit 1
  fi
  echo "$message; skipped" >&2
  exit 0
fi

node_include="$(node -p "require('path').resolve(process.execPath, '..', '..', 'include', 'node')")"
if [ ! -f "$node_include/node_api.h" ] || [ ! -f "$node_include/uv/win.h" ]; then
  echo "check-windows: no Node headers (with uv/win.h) at $node_include" >&2
  exit 1
fi

cd "$native"
addon_include="$(node -p "require('path').dirname(require.resolve('node-addon-api/package.json'))")"

# binding.gyp is JSON apart from its '#' comments.
mapfile -t sources < <(node -e '
  const gyp = JSON.parse(require("fs").readFileSync("binding.gyp", "utf8").replace(/^\s*#.*$/gm, ""))
  for (const source of gyp.targets[0].sources) console.log(source)
')
mapfile -t defines < <(node -e '
  const gyp = JSON.parse(require("fs").readFileSync("binding.gyp", "utf8").replace(/^\s*#.*$/gm, ""))
  const target = gyp.targets[0]
  const win = target.conditions.find(([condition]) => condition === "OS==\x27win\x27")
  for (const define of [...target.defines, ...(win ? win[1].defines : [])]) console.log("-D" + define)
')

status=0
for source in "${sources[@]}"; do
  if ! "$cxx" -fsyntax-only -std=c++17 -Wall -Wextra -Werror \
    "${defines[@]}" -DNODE_GYP_MODULE_NAME=gcs_native -DBUILDING_NODE_EXTENSION \
    -I"$node_include" -I"$addon_include" "$source"; then
    status=1
  fi
done

if [ "$status" -eq 0 ]; then
  echo "check-windows: ${#sources[@]} sources compile as Windows code ($("$cxx" -dumpversion), Node headers $node_include)"
fi
exit "$status"
