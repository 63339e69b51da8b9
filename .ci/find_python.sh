#!/usr/bin/env bash
# Print the path of a Python interpreter of version $1 (e.g. 3.13), or fail.
# Looks on PATH (python3.13), then in pyenv's versions when pyenv is installed.
set -euo pipefail
version="$1"
if command -v "python${version}" >/dev/null 2>&1 \
        && "python${version}" -c 'import venv' >/dev/null 2>&1; then
    command -v "python${version}"
    exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root)
    # The newest patch release of that minor version.
    match=$(pyenv versions --bare 2>/dev/null | grep -E "^${version//./\\.}\.[0-9]+$" \
            | sort -t. -k3,3n | tail -n 1 || true)
    if [ -n "${match}" ] && [ -x "${root}/versions/${match}/bin/python${version}" ]; then
        echo "${root}/versions/${match}/bin/python${version}"
        exit 0
    fi
fi
exit 1
