#!/usr/bin/env bash
# The main job at this stage: build, create a tiny random Qwen2 model with the real Qwen2.5 tokenizer, ask it a question.
set -euo pipefail
cd "$(dirname "$0")"
dotnet build src/SharpTune.Cli -c Release -v quiet -nologo
sharptune() { dotnet run --no-build --project src/SharpTune.Cli -c Release -- "$@"; }
sharptune init-model --preset tiny --tokenizer tests/fixtures/tokenizers/qwen2.5-instruct --out demo/tiny --seed 1
sharptune generate --model demo/tiny --prompt "What is the capital of France?" --max-new-tokens 24 --seed 1
