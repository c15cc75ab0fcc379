#!/usr/bin/env bash
# The system packages the tests need (ODBC drivers for the server sources, the database clients for
# native backups, poppler for pdfsig/pdftoppm, chromium and its driver for the review desk's browser test).
# One list, used by `make test` and by .ci/run.
#
# As root (CI, a fresh machine of this kind) it installs what is missing from Debian's packages;
# otherwise it names what is missing and returns 0: the tests that need those packages then skip,
# each naming the package (with CI=true they fail instead).
set -euo pipefail

PACKAGES=(unixodbc odbc-postgresql odbc-mariadb postgresql-client mariadb-client poppler-utils chromium chromium-driver)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system packages: missing ${missing[*]} (not root: not installed)." >&2
  echo "  install them with: sudo apt-get install ${missing[*]}" >&2
  echo "  until then the ODBC, native-backup and pdfsig tests are skipped (they fail with CI=true)." >&2
  exit 0
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
