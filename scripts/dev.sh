#!/usr/bin/env bash
# Set-up, build and test in one place: what README.md and .ci/run call.
#   scripts/dev.sh demo   install what is missing, build, run `nsfork run -- ps -ef`
#   scripts/dev.sh test   install what is missing, build, run the whole suite through ctest
#   scripts/dev.sh build  build only (into ./build, or $BUILD_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

# Debian 12 packages the build and the tests need (ps for the demo, bubblewrap/util-linux/hyperfine
# for the benchmark's baselines).
PACKAGES=(cmake ninja-build g++ libboost-dev flatbuffers-compiler libflatbuffers-dev libspdlog-dev
          libfmt-dev catch2 musl-tools procps util-linux)

install_missing() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return
    echo "installing: ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then echo "run as root to install packages" >&2; exit 1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

build() {
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$BUILD_DIR" -j "$(nproc)"
}

case "${1:-}" in
demo)
    install_missing
    build
    "$BUILD_DIR/bin/nsfork" run -- ps -ef
    ;;
test)
    install_missing
    build
    ctest --test-dir "$BUILD_DIR" -j "$(nproc)" --output-on-failure
    ;;
build)
    shift
    install_missing
    build "$@"
    ;;
*)
    echo "usage: scripts/dev.sh demo|test|build" >&2
    exit 2
    ;;
esac
