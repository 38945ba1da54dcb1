#!/usr/bin/env bash
# Obtains the frozen dataset debian-descriptions-v1 (package descriptions of Debian 12.15
# "bookworm" main/amd64 as a retrieval benchmark; see scripts/debian-descriptions/build.py) and
# prints, alone on stdout, the directory holding it (corpus.jsonl.gz, queries.jsonl.gz, qrels.tsv,
# likely_false_negatives.tsv, build_info.json, README.md, build.py, SHA256SUMS); everything else
# goes to stderr. Usage: scripts/fetch-debian-descriptions.sh [DEST]
# (default: $RRRA_DATA_DIR, else <repo>/target/data/debian-descriptions-v1).
#
# Every file is checked against the committed scripts/debian-descriptions/SHA256SUMS. In order:
#   1. DEST already verifies: nothing to do (idempotent).
#   2. A verified local copy is copied: $RRRA_SHARED_DATA (the dataset folder, or a folder holding
#      debian-descriptions-v1/), else <repo>/../shared/data/debian-descriptions-v1. Skipped when
#      RRRA_NO_LOCAL_COPY=1.
#   3. Rebuild with build.py from the two apt index files it was built from (main/binary-amd64/
#      Packages and main/i18n/Translation-en, pinned by SHA-256) and the suite's InRelease, from
#      snapshot.debian.org at a time when 12.15 was current, else from the live archive
#      (deb.debian.org: identical only until bookworm's next point release). Inputs that differ
#      from v1's are an error unless RRRA_ALLOW_NEWER_DEBIAN=1, which builds from whatever the
#      live archive has now (not v1: different counts) and accepts a DEST that verifies against
#      its own SHA256SUMS. ~15 MB download, ~10 s of CPU. Needs curl or wget, xz (or Python's
#      lzma) and python3.
# Overrides: RRRA_DEBIAN_SNAPSHOT (default http://snapshot.debian.org/archive/debian),
# RRRA_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-${RRRA_DATA_DIR:-$repo/target/data/debian-descriptions-v1}}"
name="debian-descriptions-v1"
sums="$repo/scripts/debian-descriptions/SHA256SUMS"
build_py="$repo/scripts/debian-descriptions/build.py"
allow_newer="${RRRA_ALLOW_NEWER_DEBIAN:-0}"
# The inputs of v1 (sizes and SHA-256 of the decompressed files, as listed in the InRelease of
# Debian 12.15) and that InRelease's date.
release_date="Sat, 11 Jul 2026 10:16:37 UTC"
packages_rel="main/binary-amd64/Packages"
packages_sha="515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f"
packages_size=50060337
translation_rel="main/i18n/Translation-en"
translation_sha="62f59c3cdca9786e4f7adf9002f9f5729a684adcb4667e58e448dec9b5a46c7f"
translation_size=32699363
# snapshot.debian.org serves the newest import at or before the given time; 12.15 was current
# from 2026-07-11 until at least 2026-11-24. Each candidate's InRelease date is checked first.
snapshot_base="${RRRA_DEBIAN_SNAPSHOT:-http://snapshot.debian.org/archive/debian}"
snapshot_times="20260712T000000Z 20260801T000000Z 20261101T000000Z"
mirror="${RRRA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

say() { echo "fetch-debian-descriptions: $*" >&2; }
die() { say "error: $*"; exit 1; }

sha256_of() {
    if command -v sha256sum >/dev/null; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

# verify DIR [SUMS]: every file of SUMS (default: the committed list) is in DIR with its SHA-256,
# and DIR's own SHA256SUMS is that list. Reports each mismatch on stderr when VERBOSE=1.
verify() {
    local dir="$1" list="${2:-$sums}" ok=0 want file got
    [ -f "$dir/SHA256SUMS" ] || { [ "${VERBOSE:-0}" = 1 ] && say "$dir/SHA256SUMS missing"; return 1; }
    while read -r want file; do
        file="${file#\*}"
        if [ ! -f "$dir/$file" ]; then
            [ "${VERBOSE:-0}" = 1 ] && say "$dir/$file: missing"
            ok=1
            continue
        fi
        got="$(sha256_of "$dir/$file")"
        if [ "$got" != "$want" ]; then
            [ "${VERBOSE:-0}" = 1 ] && say "$dir/$file: sha256 $got, expected $want"
            ok=1
        fi
    done <"$list"
    if [ "$ok" = 0 ] && ! cmp -s "$dir/SHA256SUMS" "$list"; then
        [ "${VERBOSE:-0}" = 1 ] && say "$dir/SHA256SUMS differs from $list"
        ok=1
    fi
    return "$ok"
}

# 1. Already there.
if verify "$dest"; then
    echo "$dest"
    exit 0
fi
if [ "$allow_newer" = 1 ] && [ -f "$dest/corpus.jsonl.gz" ] && verify "$dest" "$dest/SHA256SUMS"; then
    say "warning: $dest is not $name as frozen (RRRA_ALLOW_NEWER_DEBIAN=1: kept as is)"
    echo "$dest"
    exit 0
fi

parent="$(dirname "$dest")"
mkdir -p "$parent"
tmp="$(mktemp -d "$parent/.fetch-debian-descriptions.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/out"

# put_in_place: the dataset in $tmp/out replaces DEST (read-only files; DEST is swapped by mv).
put_in_place() {
    chmod a-w "$tmp"/out/*
    if [ -e "$dest" ] || [ -L "$dest" ]; then
        mv "$dest" "$tmp/old"
    fi
    mv "$tmp/out" "$dest"
    echo "$dest"
    exit 0
}

# 2. A local copy (this workstation's shared folder).
if [ "${RRRA_NO_LOCAL_COPY:-0}" != 1 ]; then
    candidates=()
    if [ -n "${RRRA_SHARED_DATA:-}" ]; then
        candidates+=("$RRRA_SHARED_DATA" "$RRRA_SHARED_DATA/$name")
    fi
    candidates+=("$repo/../shared/data/$name")
    for src in "${candidates[@]}"; do
        [ -f "$src/SHA256SUMS" ] || continue
        if ! verify "$src"; then
            say "local copy $src does not match $sums; not used"
            continue
        fi
        say "copying from $src"
        while read -r _ file; do
            cp "$src/${file#\*}" "$tmp/out/"
        done <"$sums"
        cp "$src/SHA256SUMS" "$tmp/out/"
        VERBOSE=1 verify "$tmp/out" || die "copy of $src into $tmp/out does not verify"
        put_in_place
    done
fi

# 3. Rebuild from Debian's archive.
command -v python3 >/dev/null || die "python3 is needed to rebuild the dataset (build.py)"
if command -v curl >/dev/null; then
    downloader=curl
elif command -v wget >/dev/null; then
    downloader=wget
else
    die "neither curl nor wget found: cannot download from Debian's archive"
fi

# fetch URL FILE: 0 downloaded; 2 host unreachable (DNS, connection, timeout); 1 other failure
# (e.g. HTTP 404).
fetch() {
    local url="$1" out="$2" rc=0
    say "downloading $url"
    if [ "$downloader" = curl ]; then
        curl -fsSL --connect-timeout 20 --max-time 900 --retry 2 -o "$out" "$url" || rc=$?
        case "$rc" in
            0) return 0 ;;
            5 | 6 | 7 | 28 | 35 | 52 | 56) say "cannot reach $url (curl exit $rc)"; rc=2 ;;
            *) say "download failed: $url (curl exit $rc)"; rc=1 ;;
        esac
    else
        wget -q --timeout=20 --tries=3 -O "$out" "$url" || rc=$?
        case "$rc" in
            0) return 0 ;;
            4) say "cannot reach $url (wget exit 4: network failure)"; rc=2 ;;
            *) say "download failed: $url (wget exit $rc)"; rc=1 ;;
        esac
    fi
    rm -f "$out"
    return "$rc"
}

unxz() {
    if command -v xz >/dev/null; then
        xz -dc "$1" >"$2"
    else
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
    fi
}

# inrelease_lists FILE SHA SIZE REL: the InRelease lists REL with that SHA-256 and size.
inrelease_lists() {
    grep -Eq "^ $2 +$3 +$4\$" "$1"
}

lists="$tmp/lists"
prefix="$lists/deb.debian.org_debian_dists_bookworm"
mkdir "$lists"

# get_inputs BASE: downloads Packages.xz and Translation-en.xz of BASE/dists/bookworm, unpacks
# them into the lists folder and checks them against v1's SHA-256. Returns 0 when both match, 1
# when one differs (after fetching both only with RRRA_ALLOW_NEWER_DEBIAN=1), 3 when a download
# or decompression failed.
get_inputs() {
    local base="$1" rel sha size plain got ok=0
    for rel in "$packages_rel" "$translation_rel"; do
        if [ "$rel" = "$packages_rel" ]; then
            sha="$packages_sha" size="$packages_size"
        else
            sha="$translation_sha" size="$translation_size"
        fi
        plain="${prefix}_${rel//\//_}"
        fetch "$base/dists/bookworm/$rel.xz" "$tmp/dl.xz" || return 3
        unxz "$tmp/dl.xz" "$plain" || { say "cannot decompress $base/dists/bookworm/$rel.xz"; return 3; }
        rm -f "$tmp/dl.xz"
        got="$(sha256_of "$plain")"
        if [ "$got" != "$sha" ]; then
            say "$base/dists/bookworm/$rel.xz decompresses to sha256 $got ($(wc -c <"$plain") bytes), expected $sha ($size bytes, Debian 12.15)"
            ok=1
            # Without RRRA_ALLOW_NEWER_DEBIAN the other file is not needed any more.
            [ "$allow_newer" = 1 ] || return 1
        fi
    done
    return "$ok"
}

source_ok=""
# 3a. snapshot.debian.org at a time when 12.15 was current.
for ts in $snapshot_times; do
    base="$snapshot_base/$ts"
    rc=0
    fetch "$base/dists/bookworm/InRelease" "${prefix}_InRelease" || rc=$?
    [ "$rc" = 2 ] && break   # snapshot unreachable: do not try the other times
    [ "$rc" = 0 ] || continue
    if ! grep -qx "Date: $release_date" "${prefix}_InRelease"; then
        say "$base/dists/bookworm/InRelease is not Debian 12.15's ($(grep -m1 '^Date:' "${prefix}_InRelease" || echo 'no Date'), expected Date: $release_date)"
        continue
    fi
    if get_inputs "$base"; then
        source_ok="$base"
        break
    fi
done
[ -n "$source_ok" ] || rm -f "$lists"/*

# 3b. The live archive: the same files as long as bookworm has had no point release since 12.15.
if [ -z "$source_ok" ]; then
    base="$mirror"
    fetch "$base/dists/bookworm/InRelease" "${prefix}_InRelease" || die "cannot download $base/dists/bookworm/InRelease"
    newer=0
    if ! inrelease_lists "${prefix}_InRelease" "$packages_sha" "$packages_size" "$packages_rel" ||
        ! inrelease_lists "${prefix}_InRelease" "$translation_sha" "$translation_size" "$translation_rel"; then
        newer=1
        say "$base/dists/bookworm/InRelease ($(grep -m1 '^Version:' "${prefix}_InRelease" || echo 'no Version'), $(grep -m1 '^Date:' "${prefix}_InRelease" || echo 'no Date')) does not list v1's inputs ($packages_rel sha256 $packages_sha, $translation_rel sha256 $translation_sha): bookworm has had a point release since 12.15, so a build from it would differ from the frozen $name"
        [ "$allow_newer" = 1 ] || die "not rebuilding (set RRRA_ALLOW_NEWER_DEBIAN=1 to build from the newer files anyway; or make snapshot.debian.org reachable, or set RRRA_SHARED_DATA to a copy of $name)"
        say "warning: RRRA_ALLOW_NEWER_DEBIAN=1: building from the newer files"
    elif ! grep -qx "Date: $release_date" "${prefix}_InRelease"; then
        say "warning: $base/dists/bookworm/InRelease has v1's inputs but another $(grep -m1 '^Date:' "${prefix}_InRelease" || echo 'no Date') (expected $release_date): README.md and build_info.json will differ"
    fi
    rc=0
    get_inputs "$base" || rc=$?
    if [ "$rc" != 0 ]; then
        [ "$rc" = 1 ] || die "cannot download the inputs from $base (see above)"
        if [ "$allow_newer" != 1 ]; then
            die "the inputs from $base differ from v1's (see above): a build would differ from the frozen $name (set RRRA_ALLOW_NEWER_DEBIAN=1 to build anyway)"
        fi
        [ "$newer" = 1 ] || say "warning: RRRA_ALLOW_NEWER_DEBIAN=1: building from inputs that differ from v1's"
    fi
    source_ok="$base"
fi

say "building $name from $source_ok with build.py"
python3 "$build_py" --lists "$lists" --out "$tmp/out" >"$tmp/build.log" ||
    die "build.py failed (python3 $build_py --lists $lists --out $tmp/out)"
if ! VERBOSE=1 verify "$tmp/out"; then
    if [ "$allow_newer" = 1 ]; then
        say "warning: the build from $source_ok is not the frozen $name (files above differ from $sums); RRRA_ALLOW_NEWER_DEBIAN=1: installed anyway"
    else
        die "the build from $source_ok does not match $sums (files above); $dest left unchanged"
    fi
fi
put_in_place
