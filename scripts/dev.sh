#!/usr/bin/env bash
# Set-up, build and test in one place: what README.md and .ci/run call.
#   scripts/dev.sh demo   install what is missing, build, run `nsfork run -- ps -ef`
#   scripts/dev.sh test   install what is missing, build, run the whole suite through ctest
#   scripts/dev.sh build  build only (into ./build, or $BUILD_DIR)
#   scripts/dev.sh asan   build with ASan+UBSan into ./build-asan, run the whole suite, leaks checked
#   scripts/dev.sh fuzz [SECONDS]  build the libFuzzer target with clang into ./build-fuzz, replay
#                         tests/fuzz/regressions, then fuzz for SECONDS (default 60)
#   scripts/dev.sh unit-unprivileged  run the built unit tests (nsfork-unit) as nobody (uid 65534)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

# Debian 12 packages the build and the tests need (ps for the demo; util-linux's setpriv and
# unshare for the tests and, with bubblewrap, for the benchmark's baselines; libseccomp-dev and
# pkg-config for nsfork-oci; runc and busybox-static for the oci suite, which runs every bundle
# through runc beside nsfork-oci on a busybox root filesystem; crun for the oci benchmark;
# golang-github-containers-common for podman's default seccomp profile, which a unit test compiles).
PACKAGES=(cmake ninja-build g++ libboost-dev flatbuffers-compiler libflatbuffers-dev libspdlog-dev
          libfmt-dev catch2 musl-tools procps util-linux libcli11-dev nlohmann-json3-dev bubblewrap
          libseccomp-dev pkg-config runc busybox-static crun golang-github-containers-common)

# What the fuzz target adds: clang and its libFuzzer runtime.
FUZZ_PACKAGES=(clang-14 libclang-rt-14-dev)

install_missing() {
    local missing=()
    for p in "${PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return
    echo "installing: ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then echo "run as root to install packages" >&2; exit 1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# CI builds (CI=true) treat warnings as errors; a developer's build only shows them.
WERROR=OFF
[[ ${CI:-} == true ]] && WERROR=ON

build() {
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNSFORK_WERROR="$WERROR" "$@" >/dev/null
    cmake --build "$BUILD_DIR" -j "$(nproc)"
}

# Runs the whole suite from an ASan+UBSan build. LeakSanitizer is on; a sanitizer report fails the
# test that produced it (UBSan halts, ASan exits non-zero).
asan() {
    local dir=${ASAN_BUILD_DIR:-build-asan}
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNSFORK_SANITIZE=ON -DNSFORK_WERROR="$WERROR" >/dev/null
    cmake --build "$dir" -j "$(nproc)"
    ASAN_OPTIONS=detect_leaks=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        ctest --test-dir "$dir" -j "$(nproc)" --output-on-failure
}

# Builds tests/fuzz with clang (a project of its own), replays every saved regression input, then
# fuzzes for $1 seconds from the seed corpus. New inputs go to build-fuzz/corpus (not committed);
# a crash leaves its input in build-fuzz/artifacts/ — copy it to tests/fuzz/regressions/.
fuzz() {
    local seconds=${1:-60} dir=${FUZZ_BUILD_DIR:-build-fuzz}
    cmake -S tests/fuzz -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
    cmake --build "$dir" -j "$(nproc)"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    local regressions=()
    for f in tests/fuzz/regressions/*; do [[ -f $f && $f != *.md ]] && regressions+=("$f"); done
    if ((${#regressions[@]})); then
        echo "replaying ${#regressions[@]} regression input(s)"
        "$dir/fuzz_messages" -runs=1 "${regressions[@]}"
    fi
    # libFuzzer reports every new input; keep its log, show its end (its final stats), all on failure.
    if ! "$dir/fuzz_messages" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$dir/artifacts/" "$dir/corpus" tests/fuzz/corpus >"$dir/fuzz.log" 2>&1; then
        cat "$dir/fuzz.log"
        return 1
    fi
    tail -n 20 "$dir/fuzz.log"
}

# The unit tests need no root: run them as nobody, so that one that starts to need it fails
# here. The build dir must be readable and its binaries executable by others.
unit_unprivileged() {
    local unit
    unit=$(realpath "$BUILD_DIR/bin/nsfork-unit")
    if [[ ! -x $unit ]]; then echo "$unit is not built" >&2; return 1; fi
    # A copy in a directory of its own: nobody may not be able to reach the build tree (a clone
    # under /root), nor write the current directory.
    local dir rc=0
    dir=$(mktemp -d /tmp/nsfork-unit.XXXXXX)
    chmod 755 "$dir"
    install -m 755 "$unit" "$dir/nsfork-unit"
    echo "running nsfork-unit as uid 65534"
    (cd "$dir" && setpriv --reuid=65534 --regid=65534 --clear-groups ./nsfork-unit) || rc=$?
    rm -rf "$dir"
    return "$rc"
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
asan)
    install_missing
    asan
    ;;
unit-unprivileged)
    unit_unprivileged
    ;;
fuzz)
    install_missing "${FUZZ_PACKAGES[@]}"
    fuzz "${2:-60}"
    ;;
*)
    echo "usage: scripts/dev.sh demo|test|build|asan|fuzz [SECONDS]|unit-unprivileged" >&2
    exit 2
    ;;
esac
