#!/usr/bin/env bash
# Debian/Ubuntu packages the test suite needs on a fresh machine: a Secret Service (dbus +
# gnome-keyring) for the keychain tests, PostgreSQL for the PostgreSQL dialect, Chromium for the
# browser-login tests, zsh and util-linux (script) for the shell and TTY tests, fish for its
# completion script, kubectl for the
# exec-plugin tests, and the toolchain better-sqlite3 builds with. Installs only what is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(dbus dbus-daemon gnome-keyring libsecret-1-0 postgresql chromium zsh fish util-linux python3 make g++ procps)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# kubectl for the exec-plugin tests (test/e2e/kubectl.test.ts): any kubectl on PATH will do (the
# Kubernetes project's package speaks ExecCredential v1 and v1beta1); Debian's own is
# kubernetes-client (1.20, v1beta1 only), installed when there is none.
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "system packages ready: ${packages[*]} kubectl"
