#!/usr/bin/env bash
# Check that src/ is laid out as PostgreSQL's pgindent lays it out: the
# pgindent script of PostgreSQL 15's Debian source package, Debian's
# pg_bsd_indent, PostgreSQL's typedefs plus ours (typedefs.list).  Also
# checks that typedefs.list names every typedef src/ defines.
#
#   bash test/pgindent.sh          check; print the diff and fail if unclean
#   bash test/pgindent.sh --fix    reindent src/ in place
#
# The pgindent script is taken from the postgresql-15 source package (with a
# deb-src entry made from this machine's own apt sources, in a private apt
# state directory) and cached in ~/.cache/asyncwrite.
set -euo pipefail

AW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/asyncwrite/pgindent-15
if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
fix=false
[ "${1:-}" = "--fix" ] && fix=true

if ! command -v pg_bsd_indent >/dev/null 2>&1; then
    echo "== installing pg-bsd-indent"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pg-bsd-indent >/dev/null
fi

# Fetch pgindent and PostgreSQL's typedefs.list once.
if [ ! -x "$CACHE/pgindent" ] || [ ! -s "$CACHE/typedefs.list" ]; then
    echo "== fetching pgindent from the postgresql-15 source package"
    work=$(mktemp -d /tmp/asyncwrite-pgindent.XXXXXX)
    chmod 755 "$work"
    mkdir -p "$work/sources.list.d" "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
    # deb-src entries for the archives this machine already uses (not the
    # security archive, which serves no sources).
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && sed -n '/security/d; s/^deb \(.*\)/deb-src \1/p' "$f" >>"$work/sources.list.d/src.list"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && awk 'BEGIN { RS = ""; ORS = "\n\n" } !/security/ { sub(/Types:[^\n]*/, "Types: deb-src"); print }' \
            "$f" >"$work/sources.list.d/$(basename "$f")"
    done
    touch "$work/sources.list.d/src.list"
    apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list.d/src.list"
              -o "Dir::Etc::SourceParts=$work/sources.list.d"
              -o "Dir::State::Lists=$work/lists"
              -o "Dir::Cache=$work/cache"
              -o "APT::Sandbox::User=root")
    "${SUDO[@]}" apt-get "${apt_opts[@]}" -qq update
    ( cd "$work/src" && "${SUDO[@]}" apt-get "${apt_opts[@]}" -qq source --download-only postgresql-15 >/dev/null )
    orig=$(ls "$work"/src/postgresql-15_*.orig.tar.* | head -n 1)
    tar -C "$work" -xf "$orig" --wildcards '*/src/tools/pgindent/pgindent' '*/src/tools/pgindent/typedefs.list'
    mkdir -p "$CACHE"
    cp "$work"/postgresql-15*/src/tools/pgindent/pgindent "$work"/postgresql-15*/src/tools/pgindent/typedefs.list "$CACHE/"
    chmod +x "$CACHE/pgindent"
    "${SUDO[@]}" rm -rf "$work"
fi

# Every typedef src/ defines must be in typedefs.list, or pgindent
# misformats its uses.
missing=$(grep -ohE '^\}[[:space:]]*[A-Za-z_][A-Za-z0-9_]*;|^typedef [^;(]*[[:space:]]\**[A-Za-z_][A-Za-z0-9_]*;' "$AW_ROOT"/src/*.[ch] |
    sed -E 's/.*[[:space:]*}]([A-Za-z_][A-Za-z0-9_]*);$/\1/' | sort -u |
    comm -23 - <(sort -u "$AW_ROOT/typedefs.list"))
if [ -n "$missing" ]; then
    echo "typedefs.list lacks: $(echo $missing)"
    $fix || exit 1
    { cat "$AW_ROOT/typedefs.list"; echo "$missing"; } | sort -u >"$AW_ROOT/typedefs.list.new"
    mv "$AW_ROOT/typedefs.list.new" "$AW_ROOT/typedefs.list"
fi

tmp=$(mktemp -d /tmp/asyncwrite-indent.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cat "$CACHE/typedefs.list" "$AW_ROOT/typedefs.list" >"$tmp/typedefs.list"
mkdir "$tmp/src"
cp "$AW_ROOT"/src/*.[ch] "$tmp/src/"
( cd "$tmp/src" && perl "$CACHE/pgindent" --typedefs="$tmp/typedefs.list" ./*.[ch] )
if $fix; then
    cp "$tmp"/src/*.[ch] "$AW_ROOT/src/"
    echo "pgindent: src/ reindented"
    exit 0
fi
unclean=0
for f in "$tmp"/src/*.[ch]; do
    diff -u "$AW_ROOT/src/$(basename "$f")" "$f" || unclean=1
done
if [ "$unclean" -ne 0 ]; then
    echo "pgindent: src/ is not pgindent-clean (bash test/pgindent.sh --fix)"
    exit 1
fi
echo "pgindent: src/ is clean"
