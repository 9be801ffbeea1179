#!/usr/bin/env bash
# Downloads permissively licensed, mostly pure-Python packages from PyPI (no dependencies) and
# keeps their .py files (all wheels unpacked into one folder, like a site-packages), as a second corpus root for `infill train prep --extra-root`: the GPU
# machine's own Python (~105M tokens) is what bounds the AR target (MODELS.md). prep takes from
# this root only the packages the machine lacks, and never the held-out ones.
# Usage: scripts/extra_corpus.sh OUT_DIR   (writes OUT_DIR/src/<package files>, OUT_DIR/versions.txt
#        and OUT_DIR/extra-corpus.tar.xz, small enough to travel to the GPU machine)
set -eu
OUT=${1:?out dir}
mkdir -p "$OUT/wheels" "$OUT/src"
PY=${PYTHON:-python3}
# MIT, BSD, Apache-2.0, PSF or ZPL licensed; none of them is a held-out package (corpus.py)
PACKAGES="django sqlalchemy alembic twisted tornado moto sphinx docutils astropy mypy black
pydantic fastapi starlette aiohttp celery kombu flask werkzeug scrapy biopython music21 nltk
dask distributed bokeh sqlglot pyramid salt mlflow-skinny wandb prefect apache-airflow
dagster streamlit gradio langchain-core langchain llama-index-core sentry-sdk boto3 openpyxl
xlsxwriter reportlab python-docx python-pptx beautifulsoup4 html5lib markdown mistune nbformat
nbconvert jupyter-server traitlets pexpect structlog textual prompt-toolkit pyglet simpy pint
pymc arviz pytensor keras gymnasium stable-baselines3 lightning diffusers peft trl accelerate
datasets evaluate sentence-transformers pymongo redis docker typer cattrs pyparsing sqlparse
cryptography httpx httpcore anyio trio requests urllib3 pygments jedi parso
libcst pyflakes pycodestyle isort autopep8 yapf coverage tox virtualenv nox pre-commit
seaborn plotly"
for p in $PACKAGES; do
  $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 -q -d "$OUT/wheels" "$p" 2>/dev/null || echo "skipped: $p" >&2
done
ls "$OUT/wheels" > "$OUT/versions.txt"
for whl in "$OUT/wheels"/*.whl; do
  $PY - "$whl" "$OUT/src" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.endswith(".py")])
PY
done
tar -C "$OUT" -cJf "$OUT/extra-corpus.tar.xz" src versions.txt
du -sh "$OUT/src" "$OUT/extra-corpus.tar.xz"
