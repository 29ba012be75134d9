#!/usr/bin/env bash
# The page's browser tests (tests/web/test_pages_browser.py) drive Debian's Chromium through
# Playwright from pip: Playwright never downloads a browser here. Install the distribution's
# package when it is missing (CI and developers' machines run as root with apt). Without it the
# browser tests skip with the reason, and fail under CI.
set -u
CHROMIUM="${FALKIT_CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    >/dev/null 2>&1 || true
fi
[ -x "$CHROMIUM" ] && exit 0
echo "Chromium is not installed at $CHROMIUM (apt-get install chromium): browser tests skip" >&2
[ -z "${CI:-}" ] || exit 1
exit 0
