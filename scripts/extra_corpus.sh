#!/usr/bin/env bash
# Downloads permissively licensed, mostly pure-Python packages from PyPI (no dependencies) and
# keeps their .py files (all wheels unpacked into one folder, like a site-packages), as a second
# corpus root for `infill train prep --extra-root`: the GPU machine's own Python (~105M tokens)
# is what bounds the AR target (MODELS.md). prep takes from this root only the packages the
# machine lacks, and never the held-out ones nor copies of them.
# Usage: [PACKAGES="a b ..."] scripts/extra_corpus.sh OUT_DIR   (from the repository root;
#        PACKAGES=second: the second list below; writes OUT_DIR/src: the .py
#        files that pass the corpus filters, license headers stripped; OUT_DIR/versions.txt; and
#        OUT_DIR/extra-corpus.tar.xz, ~33 MB, small enough to travel to the GPU machine beside a
#        27 MiB checkpoint)
set -eu
OUT=${1:?out dir}
mkdir -p "$OUT/wheels" "$OUT/raw"
PY=${PYTHON:-python3}
# MIT, BSD, Apache-2.0, PSF or ZPL licensed; none of them is a held-out package (corpus.py).
# Left out to fit the 64 MiB a device call carries: diffusers and keras (37M characters).
FIRST="django sqlalchemy alembic twisted tornado moto sphinx docutils astropy mypy black
pydantic fastapi starlette aiohttp celery kombu flask werkzeug scrapy biopython music21 nltk
dask distributed bokeh sqlglot pyramid salt mlflow-skinny wandb prefect apache-airflow
dagster streamlit gradio langchain-core langchain llama-index-core sentry-sdk boto3 openpyxl
xlsxwriter reportlab python-docx python-pptx beautifulsoup4 html5lib markdown mistune nbformat
nbconvert jupyter-server traitlets pexpect structlog textual prompt-toolkit pyglet simpy pint
pymc arviz pytensor gymnasium stable-baselines3 lightning peft trl accelerate
datasets evaluate sentence-transformers pymongo redis docker typer cattrs pyparsing sqlparse
cryptography httpx httpcore anyio trio requests urllib3 pygments jedi parso
libcst pyflakes pycodestyle isort autopep8 yapf coverage tox virtualenv nox pre-commit
seaborn plotly"
# A second list, for a later device call (each list's archive fills what a call carries beside
# a checkpoint): the two left out above, and more of the same licences. Measured (MODELS.md, the
# target's fourth run): training on it made the target worse; its code is mostly scientific
# and ML, further from the held-out packages than the first list's web and tooling code.
SECOND="keras diffusers djangorestframework django-filter django-extensions wagtail channels
graphene strawberry-graphql ariadne marshmallow webargs flask-sqlalchemy flask-login wtforms
authlib oauthlib bottle falcon sanic quart litestar uvicorn gunicorn hypercorn websockets
python-socketio eventlet statsmodels scikit-learn scikit-image xarray zarr optuna timm
spacy thinc pymatgen qiskit cirq-core pennylane sunpy pyomo cvxpy pulp manim vispy
ipython ipykernel ipywidgets jupyterlab notebook botocore azure-storage-blob
google-cloud-storage google-api-core selenium peewee tortoise-orm sqlmodel
asyncpg aiosqlite databases cookiecutter invoke fabric flake8 poetry-core hatchling pdm
build twine boltons more-itertools toolz sortedcontainers pendulum arrow babel
factory-boy freezegun responses vcrpy ruamel.yaml tomlkit jsonschema fastjsonschema
cerberus voluptuous schema msgspec pyjwt passlib python-multipart email-validator dnspython
netaddr imageio shapely geopandas h5py lightgbm xgboost onnx dvc kedro luigi
great-expectations pandera hydra-core omegaconf"
case "${PACKAGES:-first}" in
  first) PACKAGES=$FIRST ;;
  second) PACKAGES=$SECOND ;;
esac
for p in $PACKAGES; do
  $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 -q -d "$OUT/wheels" "$p" 2>/dev/null || echo "skipped: $p" >&2
done
ls "$OUT/wheels" > "$OUT/versions.txt"
for whl in "$OUT/wheels"/*.whl; do
  $PY - "$whl" "$OUT/raw" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.endswith(".py")])
PY
done
$PY - "$OUT/raw" "$OUT/src" <<'PY'
import sys
from pathlib import Path
from infill.train import corpus
raw, out = Path(sys.argv[1]), Path(sys.argv[2])
train, _ = corpus.split(corpus.collect([raw]))
# as prep will read them: filtered, license headers stripped, deduplicated; not a top-level
# test folder, which several wheels install over one another
kept = [f for f in train if Path(f.path).relative_to(raw).parts[0] not in ("tests", "test")]
for f in kept:
    path = out / Path(f.path).relative_to(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f.text)
print(f"{len(kept)} files, {sum(len(f.text) for f in kept) / 1e6:.0f}M characters")
PY
tar -C "$OUT" -cf - src versions.txt | xz -9e -T0 > "$OUT/extra-corpus.tar.xz"
du -sh "$OUT/src" "$OUT/extra-corpus.tar.xz"
