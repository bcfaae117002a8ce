#!/bin/sh
# pdflatex with booktabs, to check that `mine report --format latex` compiles. Idempotent.
set -eu
if command -v pdflatex >/dev/null 2>&1; then
    echo "pdflatex already installed"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended
