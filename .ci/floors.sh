#!/usr/bin/env bash
# The dependency-floors job: installs the lowest versions pyproject.toml allows (.ci/floors.txt, torch 2.13.0 CPU)
# into a separate virtual environment and runs the runtime and job-service tests with them, so the floors
# pyproject.toml declares are versions CI has actually run. Usage: .ci/floors.sh [pytest args...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${FLOORS_VENV:-$ROOT/.venv-floors}
rm -rf "$VENV"
python3 -m venv "$VENV"
# shellcheck disable=SC1091  # the venv is created just above
. "$VENV/bin/activate"
pip install -q torch==2.13.0
pip install -q -r .ci/floors.txt
pip install -q --no-deps -e .
echo "installed at the floors:"
pip list --format=freeze 2>/dev/null \
    | grep -iE '^(torch|transformers|trl|peft|datasets|accelerate|matplotlib|pydantic|hydra-core|fastapi|sqlalchemy|mlflow-skinny|tensorboard|wandb)==' \
    | tr '\n' ' '
echo
export HF_HUB_OFFLINE=1
(( $# )) || set -- tests/runtime tests/service
python -m pytest -q -p no:cacheprovider "$@"
