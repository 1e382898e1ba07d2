# Sourced from the repository's root by scripts/check and scripts/demo: make sure uv is there,
# that it trusts what the system trusts, and that the venv is in sync with uv.lock.
#
# uv is the one on PATH; else the one in .tools/, a virtual environment of the project's own
# (git-ignored) made once with `python3 -m venv` and `pip install uv`, reused on later runs.
# A system Python that refuses pip installs outside a virtual environment (PEP 668: Debian 12,
# Ubuntu 24.04, Homebrew) accepts them inside one. Only .tools/bin (uv alone) goes on PATH, so
# `python3` stays the system's and uv picks the project's interpreter as it would anyway.

erpsync_tools="$PWD/.tools"

erpsync_install_uv() {
  local python
  if ! python=$(command -v python3); then
    echo "erpsync: needs uv, or python3 to install it with; see https://docs.astral.sh/uv/" >&2
    return 1
  fi
  if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    local minor
    minor=$("$python" -c 'import sys; print(sys.version_info[1])' 2>/dev/null || echo "X")
    cat >&2 <<EOF
erpsync: uv is not on PATH, and $python cannot make the virtual environment to install it
into (.tools/): its venv module or ensurepip is missing. On Debian or Ubuntu install the OS
package python3-venv (or python3.$minor-venv):  sudo apt-get install python3-venv
Or install uv yourself (https://docs.astral.sh/uv/getting-started/installation/) and run again.
EOF
    return 1
  fi
  echo "erpsync: installing uv into .tools/ (once; $python -m venv, then pip install uv)" >&2
  # pip keeps its own trust settings: Debian's and Ubuntu's pip use the system's CA bundle,
  # pip >= 24.2 the system's trust store (truststore); PIP_CERT overrides both.
  rm -rf "$erpsync_tools"
  if ! { "$python" -m venv "$erpsync_tools/venv" \
    && "$erpsync_tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check uv \
    && mkdir -p "$erpsync_tools/bin" \
    && ln -s ../venv/bin/uv "$erpsync_tools/bin/uv"; }; then
    echo "erpsync: could not install uv into .tools/ (see the README's Quickstart, 'If it fails')" >&2
    return 1
  fi
}

# `uv --version`, not `command -v uv`: a pyenv shim named uv is on PATH even where it fails.
if ! uv --version >/dev/null 2>&1; then
  if ! "$erpsync_tools/bin/uv" --version >/dev/null 2>&1; then
    erpsync_install_uv || return 1 2>/dev/null || exit 1
  fi
  export PATH="$erpsync_tools/bin:$PATH"
fi

# The system's trust store, so that a TLS-inspecting proxy whose CA the system trusts works
# (uv's default is its bundled Mozilla roots). A choice of the user's own is left alone:
# UV_SYSTEM_CERTS=false keeps uv's roots. Older uv spells it UV_NATIVE_TLS (deprecated since).
if [[ -z "${UV_SYSTEM_CERTS+set}" && -z "${UV_NATIVE_TLS+set}" ]]; then
  if [[ "$(uv --help 2>/dev/null)" == *UV_SYSTEM_CERTS* ]]; then
    export UV_SYSTEM_CERTS=1
  else
    export UV_NATIVE_TLS=1
  fi
fi

uv sync --frozen --quiet
