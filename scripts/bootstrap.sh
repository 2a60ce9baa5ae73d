#!/usr/bin/env bash
# Installs what mimamori needs into the checkout, once: a virtual environment with the package
# (editable) and its pinned dependencies, and the Japanese font of the report charts
# (scripts/fonts.sh). Cheap when nothing changed.
#   scripts/bootstrap.sh [--test|--bench]    --test also installs the test extras, --bench the
#   test and benchmark extras (the Quix Streams peer, py-spy)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
EXTRAS=""
[[ "${1:-}" == "--test" ]] && EXTRAS="[test]"
[[ "${1:-}" == "--bench" ]] && EXTRAS="[test,bench]"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip > /dev/null
fi
stamp="$VENV/.installed${EXTRAS:+-${EXTRAS//[^a-z]/}}"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  "$VENV/bin/pip" install -q -e "$ROOT$EXTRAS" > "$VENV/install.log" 2>&1 || { cat "$VENV/install.log" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
# Without root or passwordless sudo the font is not installed: everything else still works, the
# report charts refuse to draw and tests/unit/test_report.py says which package is missing.
"$ROOT/scripts/fonts.sh" install || echo "bootstrap: the report charts' Japanese font (fonts-ipaexfont-gothic) could not be installed" >&2
