#!/usr/bin/env bash
# Builds and checks oombench with the CUDA backend on a GPU machine that has
# nvcc, CMake and ninja but none of the Debian -dev packages and no network.
#
#   scripts/gpu-check.sh --fetch   on a Debian 12 machine with network: download
#                                  the .deb files the build needs into .debs/
#                                  and the Fashion-MNIST package into .debs-data/
#   scripts/gpu-check.sh           on the GPU machine: unpack them into
#                                  .gpu/sysroot, configure, build, run the tests
#                                  and the default scenario, print a summary
#
# Environment:
#   OUT                     results and logs go there (default: results/, logs in build/gpu)
#   OOMB_GPU_SYSROOT_ONLY=1 resolve every carried dependency from the sysroot even
#                           where the system has it (to check the .debs suffice)
#   OOMB_CUDA_ARCHS         CUDA architectures (default: the project's 80;90)
#   OOMB_BUILD_JOBS         parallel build jobs (default: nproc)
#
# Exit codes: 0 everything passed, or no GPU found and the script stopped
# cleanly before the GPU steps; 1 a test or the scenario run failed; 2 usage;
# 3 fetch, unpack, configure or build failed; 4 nvidia-smi sees a GPU but CUDA
# reports none usable (driver/runtime mismatch).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEBS="$ROOT/.debs"
DATA_DEBS="$ROOT/.debs-data"
DATA_DIR="$ROOT/.gpu/data"
SYSROOT="$ROOT/.gpu/sysroot"
BUILD="$ROOT/build/gpu"
ARCH_TRIPLET=x86_64-linux-gnu
MAX_DEB_BYTES=$((40 * 1024 * 1024))

# What the build links (OpenBLAS, libyaml, jansson, Criterion, zlib), the
# runtime libraries those pull in (Criterion -> libgit2 -> mbedTLS, ssh2,
# Kerberos ...), and pkg-config itself.
PACKAGES=(
    libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libgfortran5
    libjansson-dev libjansson4
    libyaml-dev libyaml-0-2
    libcriterion-dev libcriterion3 libnanomsg5 libgit2-1.5 libffi8
    libmbedtls14 libmbedx509-1 libmbedcrypto7 libhttp-parser2.9 libssh2-1 libpcre2-8-0
    libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2
    zlib1g-dev zlib1g
    pkgconf pkgconf-bin libpkgconf3
)

say() { printf '== %s\n' "$*"; }
die() {
    local code=$1
    shift
    printf 'gpu-check: error: %s\n' "$*" >&2
    exit "$code"
}

usage() {
    sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# ------------------------------------------------------------------ fetch ----

fetch() {
    command -v apt-get >/dev/null || die 3 "--fetch needs apt-get (run it on Debian 12)"
    mkdir -p "$DEBS"
    rm -f "$DEBS"/*.deb "$DEBS/MANIFEST"
    say "downloading ${#PACKAGES[@]} packages into .debs/"
    (cd "$DEBS" && apt-get download "${PACKAGES[@]}") || die 3 "apt-get download failed"
    (cd "$DEBS" && sha256sum ./*.deb >MANIFEST)
    printf '%s\n' "${PACKAGES[@]}" >"$DEBS/PACKAGES"
    local total
    total=$(cat "$DEBS"/*.deb | wc -c)
    ls -l "$DEBS"/*.deb | awk '{printf "   %8d  %s\n", $5, $NF}' | sed "s|$DEBS/||"
    awk -v t="$total" 'BEGIN { printf "   %8d  total (%.1f MiB)\n", t, t / 1048576 }'
    [ "$total" -le "$MAX_DEB_BYTES" ] || die 3 "the .debs exceed 40 MiB"
    # The data set of the Fashion-MNIST scenarios (30 MiB), apart from the
    # build's packages: without it the GPU run leaves those scenarios out.
    mkdir -p "$DATA_DEBS"
    rm -f "$DATA_DEBS"/*.deb
    (cd "$DATA_DEBS" && apt-get download dataset-fashion-mnist) || die 3 "apt-get download dataset-fashion-mnist failed"
    (cd "$DATA_DEBS" && sha256sum ./*.deb >MANIFEST)
    say "fetched; carry .debs/ (and .debs-data/ for Fashion-MNIST) to the GPU machine and run scripts/gpu-check.sh there"
}

# ---------------------------------------------------------------- unpack -----

verify_debs() {
    [ -f "$DEBS/MANIFEST" ] || die 3 "no .debs/MANIFEST: run scripts/gpu-check.sh --fetch first (on Debian 12 with network)"
    (cd "$DEBS" && sha256sum --quiet -c MANIFEST) || die 3 ".debs/ does not match its MANIFEST"
    local p missing=0
    for p in "${PACKAGES[@]}"; do
        if ! ls "$DEBS/${p}"_*.deb >/dev/null 2>&1; then
            echo "   missing: $p" >&2
            missing=1
        fi
    done
    [ $missing -eq 0 ] || die 3 ".debs/ lacks packages of the list: run --fetch again"
    say "verified $(ls "$DEBS"/*.deb | wc -l) .deb files against .debs/MANIFEST"
}

# dpkg-deb where there is one, else ar + tar (the data member is xz or zstd).
extract_deb() {
    local deb=$1 dest=$2
    if command -v dpkg-deb >/dev/null; then
        dpkg-deb -x "$deb" "$dest"
        return
    fi
    command -v ar >/dev/null || die 3 "neither dpkg-deb nor ar found to unpack $deb"
    local member
    member=$(ar t "$deb" | grep '^data\.tar')
    case "$member" in
    *.xz) ar p "$deb" "$member" | tar -xJ -C "$dest" ;;
    *.zst) ar p "$deb" "$member" | zstd -dc | tar -x -C "$dest" ;;
    *.gz) ar p "$deb" "$member" | tar -xz -C "$dest" ;;
    *) ar p "$deb" "$member" | tar -x -C "$dest" ;;
    esac
}

unpack() {
    rm -rf "$SYSROOT"
    mkdir -p "$SYSROOT"
    local deb
    for deb in "$DEBS"/*.deb; do
        extract_deb "$deb" "$SYSROOT"
    done

    # Absolute symlinks (libz.so -> /lib/.../libz.so.1.2.13) point out of the
    # sysroot: point them back into it.
    local link target
    while IFS= read -r -d '' link; do
        target=$(readlink "$link")
        case "$target" in
        /*) if [ -e "$SYSROOT$target" ]; then ln -sfn "$SYSROOT$target" "$link"; fi ;;
        esac
    done < <(find "$SYSROOT" -type l -print0)

    # Debian's alternatives (set up by maintainer scripts, which dpkg -x does
    # not run) put OpenBLAS's libblas/cblas.h under openblas-pthread/; make the
    # usual names exist too.
    local ob_lib="$SYSROOT/usr/lib/$ARCH_TRIPLET/openblas-pthread"
    local ob_inc="$SYSROOT/usr/include/$ARCH_TRIPLET/openblas-pthread"
    local lib="$SYSROOT/usr/lib/$ARCH_TRIPLET" inc="$SYSROOT/usr/include/$ARCH_TRIPLET"
    mkdir -p "$lib/pkgconfig" "$inc"
    local f
    for f in libopenblas.so libopenblas.so.0 libblas.so libblas.so.3; do
        [ -e "$ob_lib/$f" ] && ln -sfn "$ob_lib/$f" "$lib/$f"
    done
    for f in cblas.h f77blas.h openblas_config.h; do
        [ -e "$ob_inc/$f" ] && ln -sfn "$ob_inc/$f" "$inc/$f"
    done
    [ -e "$ob_lib/pkgconfig/openblas.pc" ] && cp "$ob_lib/pkgconfig/openblas.pc" "$lib/pkgconfig/openblas.pc"

    # .pc files name /usr: rewrite to the sysroot. Criterion's private
    # requirements (boxfort, libgit2, nanomsg .pc files) only matter for static
    # links; dropping them spares four -dev packages.
    local pc
    while IFS= read -r -d '' pc; do
        [ -L "$pc" ] && continue
        sed -i -e "s|=/usr|=$SYSROOT/usr|g" -e "s| -I/usr| -I$SYSROOT/usr|g" \
            -e "s| -L/usr| -L$SYSROOT/usr|g" "$pc"
        case "$(basename "$pc")" in
        criterion.pc) sed -i -e '/^Requires.private:/d' -e '/^Libs.private:/d' "$pc" ;;
        esac
    done < <(find "$SYSROOT" -name '*.pc' -print0)
    say "unpacked into .gpu/sysroot ($(du -sh "$SYSROOT" | cut -f1))"
}

setup_env() {
    local libs="$SYSROOT/usr/lib/$ARCH_TRIPLET:$SYSROOT/usr/lib/$ARCH_TRIPLET/openblas-pthread:$SYSROOT/lib/$ARCH_TRIPLET"
    local pcdirs="$SYSROOT/usr/lib/$ARCH_TRIPLET/pkgconfig:$SYSROOT/usr/share/pkgconfig"
    export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LIBRARY_PATH="$libs${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export CPATH="$SYSROOT/usr/include:$SYSROOT/usr/include/$ARCH_TRIPLET${CPATH:+:$CPATH}"
    export CMAKE_PREFIX_PATH="$SYSROOT/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    if [ "${OOMB_GPU_SYSROOT_ONLY:-0}" = 1 ]; then
        # only the sysroot's .pc files, and its pkgconf binary
        export PKG_CONFIG_LIBDIR="$pcdirs"
        unset PKG_CONFIG_PATH
        PKG_CONFIG_BIN="$SYSROOT/usr/bin/pkgconf"
        say "OOMB_GPU_SYSROOT_ONLY=1: pkg-config modules and pkgconf from the sysroot only"
    else
        export PKG_CONFIG_PATH="$pcdirs${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
        PKG_CONFIG_BIN=$(command -v pkg-config || command -v pkgconf || echo "$SYSROOT/usr/bin/pkgconf")
    fi
    "$PKG_CONFIG_BIN" --version >/dev/null 2>&1 || die 3 "pkg-config does not run: $PKG_CONFIG_BIN"
    local m
    for m in yaml-0.1 jansson openblas criterion; do
        "$PKG_CONFIG_BIN" --exists "$m" || die 3 "pkg-config cannot find $m (PKG_CONFIG_LIBDIR=${PKG_CONFIG_LIBDIR:-} PKG_CONFIG_PATH=${PKG_CONFIG_PATH:-})"
    done
    say "pkg-config ($PKG_CONFIG_BIN) finds yaml-0.1, jansson, openblas, criterion"
}

# ----------------------------------------------------------- configure/build --

configure_and_build() {
    local gen=Ninja
    command -v ninja >/dev/null || gen="Unix Makefiles"
    local args=(-S "$ROOT" -B "$BUILD" -G "$gen" -DOOMB_CUDA=ON -DCMAKE_BUILD_TYPE=Release
        -DPKG_CONFIG_EXECUTABLE="$PKG_CONFIG_BIN")
    [ -n "${OOMB_CUDA_ARCHS:-}" ] && args+=(-DCMAKE_CUDA_ARCHITECTURES="$OOMB_CUDA_ARCHS")
    if [ "${OOMB_GPU_SYSROOT_ONLY:-0}" = 1 ]; then
        args+=(-DZLIB_ROOT="$SYSROOT/usr")
    fi
    # A cache from another generator cannot be reused.
    if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q "CMAKE_GENERATOR:INTERNAL=$gen\$" "$BUILD/CMakeCache.txt"; then
        rm -rf "$BUILD"
    fi
    say "configure ($gen): build/gpu"
    cmake "${args[@]}" >"$LOGDIR/gpu-configure.log" 2>&1 || {
        tail -30 "$LOGDIR/gpu-configure.log" >&2
        die 3 "configure failed (log: $LOGDIR/gpu-configure.log)"
    }
    grep -q 'oombench: CUDA backend ON' "$LOGDIR/gpu-configure.log" || die 3 "configured without the CUDA backend"
    if [ "${OOMB_GPU_SYSROOT_ONLY:-0}" = 1 ]; then
        local v bad=0
        for v in pkgcfg_lib_OPENBLAS_openblas pkgcfg_lib_JANSSON_jansson pkgcfg_lib_YAML_yaml \
            pkgcfg_lib_CRITERION_criterion ZLIB_LIBRARY_RELEASE ZLIB_INCLUDE_DIR; do
            local val
            val=$(grep "^$v:" "$BUILD/CMakeCache.txt" | cut -d= -f2- || true)
            case "$val" in
            "$SYSROOT"/*) ;;
            *) echo "   $v = $val is not in the sysroot" >&2; bad=1 ;;
            esac
        done
        [ $bad -eq 0 ] || die 3 "some dependencies resolved outside .gpu/sysroot"
        say "every carried dependency resolved inside .gpu/sysroot"
    fi
    local jobs=${OOMB_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}
    say "build (-j$jobs)"
    cmake --build "$BUILD" -j "$jobs" >"$LOGDIR/gpu-build.log" 2>&1 || {
        tail -40 "$LOGDIR/gpu-build.log" >&2
        die 3 "build failed (log: $LOGDIR/gpu-build.log)"
    }
    say "built: $(ls "$BUILD"/oombench "$BUILD"/tests/test_kernels_cuda 2>/dev/null | sed "s|$ROOT/||" | tr '\n' ' ')"
    # the test binaries must load their libraries (from the sysroot where carried)
    if command -v ldd >/dev/null && [ -x "$BUILD/tests/test_kernels_cuda" ]; then
        if ldd "$BUILD/tests/test_kernels_cuda" | grep -q 'not found'; then
            ldd "$BUILD/tests/test_kernels_cuda" | grep 'not found' >&2
            die 3 "test_kernels_cuda has unresolved libraries"
        fi
    fi
}

# -------------------------------------------------------------- GPU steps ----

gpu_present() {
    GPU_NAME="" GPU_DRIVER=""
    command -v nvidia-smi >/dev/null || return 1
    local q
    q=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1) || return 1
    [ -n "$q" ] || return 1
    GPU_NAME=${q%%,*}
    GPU_DRIVER=${q#*, }
    return 0
}

run_gpu_steps() {
    local ctest_log="$LOGDIR/gpu-ctest.log" rc_tests=0 rc_run=0
    say "ctest (log: $ctest_log)"
    # Debian's compare.py (libbenchmark-tools, with scipy) is not carried here.
    OOMB_NO_GBENCH_COMPARE=1 ctest --test-dir "$BUILD" --output-on-failure 2>&1 |
        tee "$ctest_log" || rc_tests=$?
    local total failed skipped passed
    # "100% tests passed, 0 tests failed out of 23" or (newer ctest) "100% tests passed out of 23"
    total=$(grep -Eo 'out of [0-9]+' "$ctest_log" | tail -n1 | grep -Eo '[0-9]+$' || echo 0)
    failed=$(grep -Eo '[0-9]+ tests failed out of' "$ctest_log" | grep -Eo '^[0-9]+' || echo 0)
    skipped=$(grep -Ec '\*\*\*Skipped|Not Run' "$ctest_log" || true)
    passed=$(grep -Ec 'Test +#[0-9]+: .* Passed' "$ctest_log" || true)

    if grep -Eq 'kernels_cuda .*Skipped' "$ctest_log"; then
        local why
        why=$("$BUILD/tests/test_kernels_cuda" 2>&1 | head -1 || true)
        say "nvidia-smi sees $GPU_NAME, but the CUDA kernel tests were skipped: $why"
        SUMMARY_CUDA="unusable: $why"
        print_summary "$passed" "$failed" "$skipped" "$total" "not run"
        exit 4
    fi

    local out="${OUT:-$ROOT/results}"
    mkdir -p "$out"
    local default_scenarios=(scenarios/*.yaml)
    if [ -z "${OOMB_FASHION_MNIST_DIR:-}" ]; then
        # no data set carried: only the synthetic scenarios
        default_scenarios=($(cd "$ROOT" && grep -L 'kind: fashion-mnist' scenarios/*.yaml))
        say "no Fashion-MNIST data (.debs-data/): its scenarios are left out"
    fi
    local scenarios=(${OOMB_GPU_SCENARIOS:-${default_scenarios[@]}})
    say "oombench run --device cuda ${scenarios[*]} --out $out"
    (cd "$ROOT" && "$BUILD/oombench" run --no-color --device cuda "${scenarios[@]}" --out "$out") 2>&1 |
        tee "$LOGDIR/gpu-run.log" || rc_run=$?
    # The caching-allocator model next to the CUDA pool on the same runs:
    # memory.allocator.reserved_peak_bytes against
    # memory.device.reserved_peak_bytes (cudaMemPoolAttrReservedMemHigh).
    say "oombench run --device cuda --allocator caching (none of mlp, fragmentation)"
    (cd "$ROOT" && "$BUILD/oombench" run --no-color --device cuda --allocator caching \
        --filter '/(none|expandable|exact)$' scenarios/mlp.yaml scenarios/fragmentation.yaml \
        --out "$out/allocator") 2>&1 | tee "$LOGDIR/gpu-allocator.log" || rc_run=$?
    if [ -x "$BUILD/oombench-roofline" ]; then
        say "oombench-roofline --device cuda --json $out/roofline.json"
        "$BUILD/oombench-roofline" --device cuda --json "$out/roofline.json" 2>&1 |
            tee "$LOGDIR/gpu-roofline.log" || rc_run=$?
    fi
    SUMMARY_CUDA="usable"
    print_summary "$passed" "$failed" "$skipped" "$total" "exit $rc_run"
    if [ "$rc_tests" -ne 0 ] || [ "$rc_run" -ne 0 ]; then
        exit 1
    fi
}

print_summary() {
    printf '\n%-22s %s\n' "GPU" "${GPU_NAME:-none}"
    printf '%-22s %s\n' "NVIDIA driver" "${GPU_DRIVER:-none}"
    printf '%-22s %s\n' "CUDA backend" "${SUMMARY_CUDA:-?}"
    printf '%-22s %s passed, %s failed, %s skipped (of %s)\n' "ctest" "$1" "$2" "$3" "$4"
    printf '%-22s %s\n' "scenarios (cuda)" "$5"
    printf '%-22s %s\n' "logs" "$LOGDIR"
}

# ------------------------------------------------------------------- main ----

case "${1:-}" in
--fetch) fetch; exit 0 ;;
-h | --help) usage; exit 0 ;;
"") ;;
*) usage >&2; exit 2 ;;
esac

command -v cmake >/dev/null || die 3 "cmake not found"
if [ -n "${OUT:-}" ]; then LOGDIR="$OUT"; else LOGDIR="$BUILD"; fi
mkdir -p "$LOGDIR" "$BUILD"

verify_debs
unpack
if [ -f "$DATA_DEBS/MANIFEST" ] && (cd "$DATA_DEBS" && sha256sum --quiet -c MANIFEST); then
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
    extract_deb "$(ls "$DATA_DEBS"/*.deb | head -1)" "$DATA_DIR"
    export OOMB_FASHION_MNIST_DIR="$DATA_DIR/usr/share/datasets/fashion-mnist"
    say "Fashion-MNIST unpacked: $OOMB_FASHION_MNIST_DIR"
fi
setup_env
configure_and_build

if ! gpu_present; then
    say "no GPU found (nvidia-smi / cudaGetDeviceCount): stopping before the GPU steps"
    if [ -x "$BUILD/tests/test_kernels_cuda" ]; then
        printf '   test_kernels_cuda says: %s\n' "$("$BUILD/tests/test_kernels_cuda" 2>&1 | head -1 || true)"
    fi
    exit 0
fi
say "GPU: $GPU_NAME, driver $GPU_DRIVER"
run_gpu_steps
