# Shared by the README's commands: installs what the build needs (Debian), and with
# CAIRN_TEST_TOOLS=1 (scripts/test.sh) what the tests need too.
#   - libclang-dev, g++, pkg-config: RocksDB's bundled build (bindgen needs libclang);
#   - tests: prometheus (`promtool check metrics`; the package starts no service by itself),
#     chromium (the explorer page, headless), python3-venv (a venv in .tools/venv for
#     openapi-spec-validator, from PyPI, pinned), systemd (`systemd-analyze verify` of the
#     unit in packaging/; nothing is started), iptables (partitions and loss between nodes in
#     network namespaces) and faketime (the chaos run's clock fault).
say() { printf '\n==> %s\n' "$*"; }

missing=()
packages=(libclang-dev g++ pkg-config)
[[ ${CAIRN_TEST_TOOLS:-} == 1 ]] && packages+=(prometheus chromium python3-venv systemd iptables faketime)
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing system packages: ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "error: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

venv=.tools/venv
if [[ ${CAIRN_TEST_TOOLS:-} == 1 && ! -x $venv/bin/openapi-spec-validator ]]; then
  say "installing openapi-spec-validator into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check openapi-spec-validator==0.9.0
fi

command -v cargo >/dev/null || { echo "error: cargo not found; install Rust first (rustup)" >&2; exit 1; }
