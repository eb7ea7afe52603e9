#!/usr/bin/env bash
# Set-up, build and test in one place: what README.md and .ci/run call.
#   scripts/dev.sh demo   install what is missing, build, run `nsfork run -- ps -ef`
#   scripts/dev.sh test   install what is missing, build, run the whole suite through ctest
#   scripts/dev.sh build  build only (into ./build, or $BUILD_DIR)
#   scripts/dev.sh asan   build with ASan+UBSan into ./build-asan, run the whole suite, leaks checked
#   scripts/dev.sh fuzz [SECONDS]  build the libFuzzer target with clang into ./build-fuzz, replay
#                         tests/fuzz/regressions, then fuzz for SECONDS (default 60)
#   scripts/dev.sh unit-unprivileged  run the built unit tests (nsfork-unit) as nobody (uid 65534)
#   scripts/dev.sh package  install into a temporary prefix, check the tree, serve from it and
#                         build and run examples/agent against it; the same for the client alone
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

# Debian 12 packages the build and the tests need (ps for the demo; util-linux's setpriv and
# unshare for the tests and, with bubblewrap, for the benchmark's baselines; libseccomp-dev and
# pkg-config for nsfork-oci; runc and busybox-static for the oci suite, which runs every bundle
# through runc beside nsfork-oci on a busybox root filesystem; crun for the oci benchmark;
# golang-github-containers-common for podman's default seccomp profile, which a unit test compiles;
# python3-flatbuffers and python3-pytest for the Python client and its tests; systemd for
# systemd-socket-activate, which the socket activation tests start the server with; the engines
# the engine suite (tests/engines) drives nsfork-oci with: podman with conmon, containerd,
# docker.io, Slurm's daemons and client with munge).
PACKAGES=(cmake ninja-build g++ libboost-dev flatbuffers-compiler libflatbuffers-dev libspdlog-dev
          libfmt-dev catch2 musl-tools procps util-linux libcli11-dev nlohmann-json3-dev bubblewrap
          libseccomp-dev pkg-config runc busybox-static crun golang-github-containers-common hyperfine
          python3-flatbuffers python3-pytest systemd
          podman conmon containerd docker.io slurmd slurmctld slurm-client munge)

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
    # The engines' packages would start their system daemons (dockerd, containerd, munged,
    # slurmd) where an init runs: the tests start private ones. policy-rc.d forbids starts during
    # the install (Debian's invoke-rc.d convention); one already there is left alone.
    local policy=/usr/sbin/policy-rc.d own_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || rc=$?
    [[ -n $own_policy ]] && rm -f "$policy"
    return "$rc"
}

# CI builds (CI=true) treat warnings as errors; a developer's build only shows them.
WERROR=OFF
[[ ${CI:-} == true ]] && WERROR=ON

build() {
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNSFORK_WERROR="$WERROR" "$@" >/dev/null
    cmake --build "$BUILD_DIR" -j "$(nproc)"
}

# Runs the whole suite from an ASan+UBSan build. LeakSanitizer is on; a sanitizer report fails the
# test that produced it (UBSan halts, ASan exits non-zero). The engine suite is left out: it
# drives the engines' own binaries, and nsfork-oci's code is the suite's oci tests' too.
asan() {
    local dir=${ASAN_BUILD_DIR:-build-asan}
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNSFORK_SANITIZE=ON -DNSFORK_WERROR="$WERROR" >/dev/null
    cmake --build "$dir" -j "$(nproc)"
    ASAN_OPTIONS=detect_leaks=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        ctest --test-dir "$dir" -j "$(nproc)" --output-on-failure -LE engines
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

# The installable package as an agent's author gets it. Installs the build into a temporary
# prefix and checks the tree (layout, soname, exports); serves from the INSTALLED nsfork, which
# must find its own shim in libexec; builds examples/agent against the installed package with
# find_package and with pkg-config, shared and static, and runs it; then configures, builds and
# installs the client library alone (NSFORK_CLIENT_ONLY) into another prefix and the example
# against that. Everything it made goes, also when a step fails.
PACKAGE_WORK=
PACKAGE_SERVER=
package_cleanup() {
    local rc=$?
    if [[ -n $PACKAGE_SERVER ]]; then
        kill -TERM "$PACKAGE_SERVER" 2>/dev/null || true
        wait "$PACKAGE_SERVER" 2>/dev/null || true
    fi
    if [[ -n $PACKAGE_WORK ]]; then
        if ((rc != 0)) && [[ -s $PACKAGE_WORK/serve.log ]]; then
            echo "--- the installed server's log:" >&2
            cat "$PACKAGE_WORK/serve.log" >&2
        fi
        rm -rf "$PACKAGE_WORK"
    fi
    ((rc == 0)) || echo "package: FAILED" >&2
    return "$rc"
}

package_fail() {
    echo "package: $*" >&2
    exit 1
}

# A configured value of the build ($BUILD_DIR/CMakeCache.txt).
cache_value() {
    sed -n "s/^$1:[A-Z]*=//p" "$BUILD_DIR/CMakeCache.txt"
}

# check_installed_tree PREFIX full|client: what `cmake --install` put under PREFIX.
check_installed_tree() {
    local prefix=$1 kind=$2 libdir version
    libdir=$prefix/$(cache_value CMAKE_INSTALL_LIBDIR)
    version=$(cache_value CMAKE_PROJECT_VERSION)
    echo "installed under $prefix:"
    (cd "$prefix" && find . ! -type d | sort | sed 's|^\./|  |')

    # The public headers, all of them, and no other header anywhere.
    diff <(cd include && find . -type f | sort) <(cd "$prefix/include" && find . -type f | sort) \
        || package_fail "the installed headers are not exactly include/nsfork/*.hpp"
    [[ -z $(find "$prefix" \( -name '*.h' -o -name '*.hpp' \) ! -path "$prefix/include/nsfork/*") ]] \
        || package_fail "a header was installed outside include/nsfork"

    # The library: shared with its soname and version, static, and the files that find it.
    [[ $(readlink "$libdir/libnsfork.so") == "libnsfork.so.${version%%.*}" &&
       $(readlink "$libdir/libnsfork.so.${version%%.*}") == "libnsfork.so.$version" ]] \
        || package_fail "libnsfork.so -> libnsfork.so.${version%%.*} -> libnsfork.so.$version missing"
    grep -q "(SONAME).*\[libnsfork.so.${version%%.*}\]" <<<"$(readelf -d "$libdir/libnsfork.so.$version")" \
        || package_fail "libnsfork.so.$version has no soname libnsfork.so.${version%%.*}"
    [[ -f $libdir/libnsfork.a ]] || package_fail "no libnsfork.a"
    cmake/check_exports.sh "$libdir/libnsfork.so.$version"
    for f in nsforkConfig.cmake nsforkConfigVersion.cmake nsforkTargets.cmake; do
        [[ -f $libdir/cmake/nsfork/$f ]] || package_fail "no $libdir/cmake/nsfork/$f"
    done
    [[ $(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --modversion nsfork) == "$version" ]] \
        || package_fail "pkg-config does not find nsfork $version in $libdir/pkgconfig"

    if [[ $kind == client ]]; then
        [[ ! -e $prefix/bin && ! -e $prefix/libexec ]] || package_fail "the client alone installed programs"
        return
    fi
    # The programs: the fronts of the CLI and of nsfork-oci in bin, the full programs they hand
    # over to (and the server starts nsfork-oci's warm runtimes from) and the shim in
    # libexec/nsfork only.
    [[ -x $prefix/bin/nsfork ]] || package_fail "no bin/nsfork"
    [[ -x $prefix/libexec/nsfork/nsfork ]] || package_fail "no libexec/nsfork/nsfork (the full program the front execs)"
    if [[ -x $BUILD_DIR/bin/nsfork-oci ]]; then
        [[ -x $prefix/bin/nsfork-oci ]] || package_fail "no bin/nsfork-oci"
        [[ -x $prefix/libexec/nsfork/nsfork-oci ]] || package_fail "no libexec/nsfork/nsfork-oci (the full runtime)"
    fi
    [[ -x $prefix/libexec/nsfork/nsfork-shim && ! -e $prefix/bin/nsfork-shim ]] \
        || package_fail "nsfork-shim is not in libexec/nsfork alone"
}

# build_agent DIR CMAKE_ARGS...: examples/agent, warnings as errors in CI, as a user builds it.
build_agent() {
    local dir=$1
    shift
    local flags=(-Wall -Wextra)
    [[ $WERROR == ON ]] && flags+=(-Werror)
    cmake -S examples/agent -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
          -DCMAKE_CXX_FLAGS="${flags[*]}" "$@" >/dev/null
    cmake --build "$dir" >/dev/null
}

# run_agent DIR SOCKET LIBDIR|static: both agents, linked as said, against the server at SOCKET.
run_agent() {
    local dir=$1 sock=$2 linked=$3
    local agent libs
    for agent in agent async_agent; do
        libs=$(ldd "$dir/$agent")
        if [[ $linked == static ]]; then
            ! grep -q libnsfork <<<"$libs" || package_fail "$dir/$agent loads libnsfork.so"
        else
            grep -q "libnsfork.so.[0-9]* => $linked/" <<<"$libs" \
                || package_fail "$dir/$agent does not load the installed libnsfork.so from $linked"
        fi
        echo "\$ $agent (${dir##*/})"
        "$dir/$agent" "$sock" || package_fail "$agent (${dir##*/}) failed"
    done
}

package() {
    PACKAGE_WORK=$(mktemp -d /tmp/nsfork-package.XXXXXX)
    trap package_cleanup EXIT
    local work=$PACKAGE_WORK
    local prefix=$work/prefix sock=$work/nsfork.sock libdir shim
    libdir=$prefix/$(cache_value CMAKE_INSTALL_LIBDIR)
    cmake --install "$BUILD_DIR" --prefix "$prefix" >/dev/null
    check_installed_tree "$prefix" full

    # The installed programs find the installed shim (bin/../libexec/nsfork), without a server
    # and through one: it is the container's pid 1.
    shim=$(realpath "$prefix/libexec/nsfork/nsfork-shim")
    [[ $("$prefix/bin/nsfork" run -- readlink /proc/1/exe) == "$shim" ]] \
        || package_fail "nsfork run's pid 1 is not $shim"
    "$prefix/bin/nsfork" serve --socket "$sock" --log-level warn 2>"$work/serve.log" &
    PACKAGE_SERVER=$!
    for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.1; done
    [[ -S $sock ]] || package_fail "the installed nsfork serve did not listen on $sock"
    [[ $("$prefix/bin/nsfork" run --socket "$sock" -- readlink /proc/1/exe) == "$shim" ]] \
        || package_fail "the installed server's containers' pid 1 is not $shim"
    echo "the installed nsfork runs $shim as pid 1, with and without a server"

    # The example against the installed package: find_package (shared, then static), pkg-config
    # (a CMake project, then the command line a Makefile would use, static).
    build_agent "$work/agent-cmake" -DCMAKE_PREFIX_PATH="$prefix"
    run_agent "$work/agent-cmake" "$sock" "$libdir"
    build_agent "$work/agent-cmake-static" -DCMAKE_PREFIX_PATH="$prefix" -DAGENT_STATIC=ON
    run_agent "$work/agent-cmake-static" "$sock" static
    PKG_CONFIG_PATH=$libdir/pkgconfig build_agent "$work/agent-pkgconfig" -DAGENT_USE_PKGCONFIG=ON
    run_agent "$work/agent-pkgconfig" "$sock" "$libdir"
    mkdir "$work/agent-cc"
    # shellcheck disable=SC2046  # pkg-config's output is meant to be split into arguments
    c++ -std=c++20 examples/agent/agent.cpp -o "$work/agent-cc/agent" \
        $(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags nsfork) \
        -Wl,-Bstatic $(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --static --libs nsfork) -Wl,-Bdynamic
    ! grep -q libnsfork <<<"$(ldd "$work/agent-cc/agent")" || package_fail "agent-cc/agent loads libnsfork.so"
    echo "\$ agent (c++ \$(pkg-config --static --libs nsfork))"
    "$work/agent-cc/agent" "$sock" || package_fail "agent (pkg-config --static) failed"

    # The client alone: configured without the server's dependencies, built, tested, installed,
    # and the example built against it.
    local client_build=$work/client-build client_prefix=$work/client-prefix
    cmake -S . -B "$client_build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNSFORK_WERROR="$WERROR" \
          -DNSFORK_CLIENT_ONLY=ON >/dev/null
    if grep -E '^(MUSL_GCC|spdlog_DIR|fmt_DIR|CLI11_DIR|nlohmann_json_DIR|Catch2_DIR|SECCOMP_[A-Z]*):' \
        "$client_build/CMakeCache.txt"; then
        package_fail "the client-only configuration looked for the server's dependencies"
    fi
    cmake --build "$client_build" >/dev/null
    ctest --test-dir "$client_build" --output-on-failure >/dev/null || package_fail "the client-only build's tests failed"
    cmake --install "$client_build" --prefix "$client_prefix" >/dev/null
    BUILD_DIR=$client_build check_installed_tree "$client_prefix" client
    build_agent "$work/agent-client-only" -DCMAKE_PREFIX_PATH="$client_prefix"
    run_agent "$work/agent-client-only" "$sock" "$client_prefix/$(BUILD_DIR=$client_build cache_value CMAKE_INSTALL_LIBDIR)"

    # The server ends cleanly, its cgroup tree with it.
    kill -TERM "$PACKAGE_SERVER"
    wait "$PACKAGE_SERVER" || package_fail "the installed server exited with status $?"
    [[ -z $(find /sys/fs/cgroup -maxdepth 4 -name "nsfork-$PACKAGE_SERVER" 2>/dev/null) ]] \
        || package_fail "the installed server left its cgroup tree nsfork-$PACKAGE_SERVER"
    PACKAGE_SERVER=
    echo "package: OK"
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
package)
    install_missing
    build
    package
    ;;
*)
    echo "usage: scripts/dev.sh demo|test|build|asan|fuzz [SECONDS]|unit-unprivileged|package" >&2
    exit 2
    ;;
esac
