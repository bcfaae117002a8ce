#!/bin/sh
# Install Label Studio (the server the live-sync tests push to and pull from) into its own venv,
# outside the project's .venv: it pins its own Django stack, which must not meet the project's
# dependencies. Idempotent: does nothing when that version is already there.
# The tests find it at $LABEL_STUDIO_VENV (default below) and skip with the reason when it is absent.
set -eu
VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
VENV="${LABEL_STUDIO_VENV:-${HOME}/.cache/mine/label-studio-${VERSION}}"
PY="${PY:-python3.11}"
if [ -x "$VENV/bin/label-studio" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('label-studio') != '$VERSION')" 2>/dev/null; then
    echo "label-studio $VERSION already installed in $VENV"
    exit 0
fi
start=$(date +%s)
"$PY" -m venv "$VENV" || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "label-studio==$VERSION"
echo "label-studio $VERSION installed in $VENV in $(( $(date +%s) - start )) s"
