#!/usr/bin/env bash
# Renders a report's index.html (written by `oombench report`) in headless
# Chromium and saves a screenshot, after checking that every <img> of the
# page points at a chart that exists and is a whole SVG or PNG. Installs the
# Debian package `chromium` when no Chromium is found (nothing to do when it
# is there).
#
#   bash scripts/report-screenshot.sh REPORT_DIR [OUT.png]
#
# OUT.png defaults to REPORT_DIR/screenshot.png. REPORT_SHOT_SIZE sets the
# window (default 1400,3000). A report with several scenarios is long:
# REPORT_SHOT_PAGES=N takes N window-high shots down the page, OUT-1.png to
# OUT-N.png (default 1: OUT.png, the top of the page). Exit status: 0
# screenshot(s) written, 1 a missing or broken image or no screenshot, 2
# usage error.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    echo "usage: bash scripts/report-screenshot.sh REPORT_DIR [OUT.png]" >&2
    exit 2
fi
dir=$(cd "$1" && pwd)
out=${2:-$dir/screenshot.png}
size=${REPORT_SHOT_SIZE:-1400,3000}
pages=${REPORT_SHOT_PAGES:-1}
case $pages in
'' | *[!0-9]* | 0)
    echo "report-screenshot: REPORT_SHOT_PAGES must be a positive number" >&2
    exit 2
    ;;
esac
case $size in
*[!0-9,]* | *,*,* | ,* | *, | [!0-9]*)
    echo "report-screenshot: REPORT_SHOT_SIZE must be WIDTH,HEIGHT" >&2
    exit 2
    ;;
esac
width=${size%,*}
height=${size#*,}
page=$dir/index.html
if [ ! -f "$page" ]; then
    echo "report-screenshot: $page not found (run oombench report first)" >&2
    exit 2
fi

# Every image the page shows must be there and complete.
n=0
bad=0
while IFS= read -r src; do
    n=$((n + 1))
    f=$dir/$src
    if [ ! -s "$f" ]; then
        echo "report-screenshot: image $src is missing or empty" >&2
        bad=1
        continue
    fi
    case $src in
    *.svg)
        if ! grep -q '<svg' "$f" || ! tail -c 64 "$f" | grep -q '</svg>'; then
            echo "report-screenshot: $src is not a whole SVG" >&2
            bad=1
        fi
        ;;
    *.png)
        if [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" != "89504e47" ]; then
            echo "report-screenshot: $src is not a PNG" >&2
            bad=1
        fi
        ;;
    esac
done < <(grep -o '<img [^>]*src="[^"]*"' "$page" | sed 's/.*src="\([^"]*\)"/\1/')
if [ "$bad" -ne 0 ]; then
    exit 1
fi
echo "report-screenshot: $n image(s) referenced by index.html, all present"

browser=""
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then
        browser=$b
        break
    fi
done
if [ -z "$browser" ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    echo "report-screenshot: installing chromium (Debian package)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null
    browser=chromium
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shot URL PNG: --virtual-time-budget lets the page finish loading its
# images before the picture is taken.
shot() {
    "$browser" --headless --disable-gpu --no-sandbox --hide-scrollbars \
        --user-data-dir="$tmp/profile" --virtual-time-budget=5000 \
        --window-size="$size" --screenshot="$2" "$1" >"$tmp/log" 2>&1 || true
    if [ ! -s "$2" ]; then
        echo "report-screenshot: $browser wrote no screenshot:" >&2
        tail -5 "$tmp/log" >&2
        exit 1
    fi
}
if [ "$pages" -eq 1 ]; then
    shot "file://$page" "$tmp/shot.png"
    mv "$tmp/shot.png" "$out"
    echo "report-screenshot: $out"
    exit 0
fi
# Page k shows the report from (k-1) window heights down: the report in an
# iframe as tall as all the pages, moved up (no script needed). The frame
# page sits in the report folder, so that the report's own relative links
# and images load; it is removed afterwards.
frame=$dir/.report-screenshot-$$.html
trap 'rm -rf "$tmp"; rm -f "$frame"' EXIT
for ((k = 1; k <= pages; k++)); do
    top=$(((k - 1) * height))
    printf '<!DOCTYPE html><html><body style="margin:0;overflow:hidden">
<iframe src="index.html" scrolling="no" style="position:absolute;left:0;top:-%dpx;width:%dpx;height:%dpx;border:0"></iframe>
</body></html>\n' "$top" "$width" "$((pages * height))" >"$frame"
    shot "file://$frame" "$tmp/shot.png"
    mv "$tmp/shot.png" "${out%.png}-$k.png"
    echo "report-screenshot: ${out%.png}-$k.png"
done
