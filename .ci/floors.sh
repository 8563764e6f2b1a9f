#!/usr/bin/env bash
# The dependency-floors job: installs the lowest versions pyproject.toml allows (.ci/floors.txt, torch 2.13.0 CPU)
# into a separate virtual environment and runs runtime and job-service tests with them, so the floors
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
# by default the tests that exercise the dependencies' APIs: every training method's stage (SFT/LoRA, DPO, GRPO,
# KTO), evaluation and the gate, resume after a failed checkpoint, the three tracking backends, and the job service's
# request translation and the official client's session (the rest of tests/runtime adds time, not API coverage)
(( $# )) || set -- tests/runtime/test_tracking.py tests/runtime/test_train.py tests/runtime/test_preference.py \
    tests/runtime/test_grpo.py tests/runtime/test_kto.py tests/runtime/test_eval_gate.py \
    "tests/runtime/test_faults.py::test_a_full_disk_during_a_checkpoint_fails_cleanly_and_resumes_after_space_is_freed" \
    tests/service/test_translate.py tests/service/test_nemo_client.py
python -m pytest -q -p no:cacheprovider "$@"
