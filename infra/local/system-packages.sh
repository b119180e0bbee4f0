#!/usr/bin/env bash
# Debian packages the central side needs beyond Python: a CJK TrueType font that the PDF report can
# embed (reportlab cannot embed CFF-based .otf fonts) and poppler-utils (PDF → PNG in the report tests).
set -u
need=()
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "make: please install these Debian packages: ${need[*]} (sudo apt-get install ${need[*]})"
  exit 0
fi
echo ">> installing ${need[*]}"
apt-get update -qq >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 \
  || echo "make: apt-get install ${need[*]} failed; the PDF report will say what is missing"
