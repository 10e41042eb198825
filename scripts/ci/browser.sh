#!/usr/bin/env bash
# Installs the headless browser of the UI tests: Debian's chromium and chromium-driver (chromedriver of the
# same version), with apt and no recommended packages. Idempotent: does nothing when /usr/bin/chromium and
# /usr/bin/chromedriver are there. Needs root (CI runs as root); refreshes the package lists once, only when
# the install fails without it. The apt log goes to $PZ_BROWSER_LOG (default: a temporary file), and its last
# lines to stderr on failure.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
PACKAGES=(chromium chromium-driver)

if [[ -x $CHROMIUM && -x $CHROMEDRIVER ]]; then
    echo "chromium and chromedriver are installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi
if ((EUID != 0)); then
    echo "scripts/ci/browser.sh installs ${PACKAGES[*]} with apt-get and needs root" >&2
    exit 1
fi

log=${PZ_BROWSER_LOG:-$(mktemp -t pz-browser-apt.XXXXXX.log)}
apt_install=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${PACKAGES[@]}")
started=$SECONDS
echo "installing ${PACKAGES[*]} (log: $log)"
if ! DEBIAN_FRONTEND=noninteractive "${apt_install[@]}" >"$log" 2>&1; then
    echo "apt-get install failed; refreshing the package lists and retrying"
    if ! { apt-get update -q -o DPkg::Lock::Timeout=300 >>"$log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive "${apt_install[@]}" >>"$log" 2>&1; }; then
        tail -n 20 "$log" >&2
        echo "could not install ${PACKAGES[*]} (log: $log)" >&2
        exit 1
    fi
fi
for binary in "$CHROMIUM" "$CHROMEDRIVER"; do
    [[ -x $binary ]] || { echo "$binary is missing after installing ${PACKAGES[*]}" >&2; exit 1; }
done
echo "installed in $((SECONDS - started)) s: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
