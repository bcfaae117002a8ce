#!/bin/sh
# Install Label Studio (the server the live-sync tests push to and pull from) into its own venv,
# outside the project's .venv: it pins its own Django stack, which must not meet the project's
# dependencies. Then migrate one empty database ($VENV/migrated) that the tests copy instead of
# running Label Studio's ~300 migrations at every start. Idempotent: does nothing when both are there.
# The tests find it at $LABEL_STUDIO_VENV (default below) and skip with the reason when it is absent.
set -eu
VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
VENV="${LABEL_STUDIO_VENV:-${HOME}/.cache/mine/label-studio-${VERSION}}"
PY="${PY:-python3.11}"
start=$(date +%s)
if [ -x "$VENV/bin/label-studio" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('label-studio') != '$VERSION')" 2>/dev/null; then
    echo "label-studio $VERSION already installed in $VENV"
else
    "$PY" -m venv "$VENV" || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "label-studio==$VERSION"
    echo "label-studio $VERSION installed in $VENV in $(( $(date +%s) - start )) s"
fi
if [ ! -f "$VENV/migrated/label_studio.sqlite3" ]; then
    start=$(date +%s)
    rm -rf "$VENV/migrated.tmp"
    # no user, no project: only the schema; nothing asks the network
    LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false SENTRY_DSN= FRONTEND_SENTRY_DSN= \
        "$VENV/bin/label-studio" init --quiet --data-dir "$VENV/migrated.tmp" > "$VENV/migrate.log" 2>&1
    rm -f "$VENV/migrated.tmp/.env"   # its secret key: every test data folder makes its own
    mv "$VENV/migrated.tmp" "$VENV/migrated"
    echo "label-studio database migrated in $(( $(date +%s) - start )) s"
fi
