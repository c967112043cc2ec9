#!/usr/bin/env bash
# The method table of docs/methods.md in one command: generate the README's tiny demo model, then train every
# fine-tuning method on the bundled identity data with the same steps, batch size, cutoff, seed and held-out split,
# evaluate it, let it answer the same questions (do_predict + predict_with_generate, greedy) and print one markdown
# row per method: PEFT's trainable-parameter line, peak RSS, train tokens/s, final eval loss, BLEU-4 and ROUGE-L.
#
#   bash bench/methods.sh [WORK_DIR]                         # all methods, default budget (WORK_DIR: bench-methods)
#   METHODS="lora bitfit" STEPS=4 bash bench/methods.sh DIR  # a subset on a tiny budget
#
# STEPS (default 60), PREDICT_SAMPLES (default 12), MAX_NEW_TOKENS (default 32) set the budget; SHARPTUNE is the
# command that runs the CLI (default: build src/SharpTune.Cli and run its dll). The table is also written to
# WORK_DIR/methods.md; every run's config, log and results stay in WORK_DIR/METHOD/.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mkdir -p "${1:-bench-methods}" && cd "${1:-bench-methods}" && pwd)"
steps="${STEPS:-60}"
predict_samples="${PREDICT_SAMPLES:-12}"
max_new_tokens="${MAX_NEW_TOKENS:-32}"
all_methods="full freeze lora rslora dora pissa loraplus qlora_nf4 ia3 bitfit adapter prompt_tuning p_tuning prefix_tuning"
methods="${METHODS:-$all_methods}"
if [[ -z "${SHARPTUNE:-}" ]]; then
  dotnet build "$repo/src/SharpTune.Cli" -c Release -v quiet -nologo >&2
  SHARPTUNE="dotnet $repo/src/SharpTune.Cli/bin/Release/net10.0/SharpTune.Cli.dll"
fi
sharptune() { (cd "$repo" && $SHARPTUNE "$@"); }

# Each method's own keys and its learning rate (the values the method's paper or PEFT's examples use for a small
# model trained for few steps; the LoRA family keeps the demo's rank 16 on all seven projections).
method_keys() {
  case "$1" in
    full)          printf 'finetuning_type: full\nlearning_rate: 1.0e-3\n' ;;
    freeze)        printf 'finetuning_type: freeze\nfreeze_trainable_layers: 1\nlearning_rate: 1.0e-3\n' ;;
    lora)          printf 'finetuning_type: lora\nlora_rank: 16\nlora_target: all\nlearning_rate: 1.0e-2\n' ;;
    rslora)        printf 'finetuning_type: lora\nlora_rank: 16\nlora_target: all\nuse_rslora: true\nlearning_rate: 1.0e-2\n' ;;
    dora)          printf 'finetuning_type: lora\nlora_rank: 16\nlora_target: all\nuse_dora: true\nlearning_rate: 1.0e-2\n' ;;
    pissa)         printf 'finetuning_type: lora\nlora_rank: 16\nlora_target: all\npissa_init: true\npissa_iter: 16\nlearning_rate: 1.0e-2\n' ;;
    loraplus)      printf 'finetuning_type: lora\nlora_rank: 16\nlora_target: all\nloraplus_lr_ratio: 16.0\nlearning_rate: 2.0e-3\n' ;;
    qlora_nf4)     printf 'finetuning_type: lora\nlora_rank: 16\nlora_target: all\nquantization_bit: 4\nquantization_type: nf4\nlearning_rate: 1.0e-2\n' ;;
    ia3)           printf 'finetuning_type: ia3\nlearning_rate: 1.0e-2\n' ;;
    bitfit)        printf 'finetuning_type: bitfit\nlearning_rate: 1.0e-2\n' ;;
    adapter)       printf 'finetuning_type: adapter\nadapter_reduction_factor: 16\nlearning_rate: 5.0e-3\n' ;;
    prompt_tuning) printf 'finetuning_type: prompt_tuning\nnum_virtual_tokens: 20\nlearning_rate: 3.0e-2\n' ;;
    p_tuning)      printf 'finetuning_type: p_tuning\nnum_virtual_tokens: 20\nencoder_hidden_size: 128\nlearning_rate: 1.0e-2\n' ;;
    prefix_tuning) printf 'finetuning_type: prefix_tuning\nnum_virtual_tokens: 20\nlearning_rate: 1.0e-2\n' ;;
    *) echo "error: unknown method '$1'; known: $all_methods" >&2; return 2 ;;
  esac
}
for method in $methods; do method_keys "$method" >/dev/null; done

# A number from one of the run's pretty-printed result files ("key": value,), or "-" when it is not there.
result() { sed -n "s/^ *\"$2\": *\([^,]*\),\{0,1\}$/\1/p" "$1" 2>/dev/null | head -n 1 | grep . || echo -; }
round() { [[ "$2" == - ]] && echo - || LC_ALL=C printf "%.${1}f" "$2"; }

sharptune init-model --preset tiny --tokenizer tests/fixtures/tokenizers/qwen2.5-instruct --out "$work/tiny" --seed 1 >&2

rows=()
for method in $methods; do
  dir="$work/$method"
  mkdir -p "$dir"
  keys="$(method_keys "$method")"
  cat > "$dir/train.yaml" <<EOF
model_name_or_path: $work/tiny
stage: sft
do_train: true
$keys
dataset: identity
dataset_dir: data
template: qwen
cutoff_len: 256
val_size: 0.1
eval_strategy: steps
eval_steps: $steps
output_dir: $dir/train
overwrite_output_dir: true
save_strategy: "no"
logging_steps: 10
per_device_train_batch_size: 8
per_device_eval_batch_size: 8
max_steps: $steps
lr_scheduler_type: cosine
warmup_ratio: 0.05
seed: 42
EOF
  echo "== $method: training $steps steps" >&2
  sharptune train "$dir/train.yaml" 2>&1 | tee "$dir/train.log" >&2

  # Full and freeze save the whole model, the PEFT methods an adapter for the base.
  if [[ -f "$dir/train/adapter_config.json" ]]; then model="model_name_or_path: $work/tiny
adapter_name_or_path: $dir/train"; else model="model_name_or_path: $dir/train"; fi
  quantization="$(grep '^quantization_' <<<"$keys" || true)"
  cat > "$dir/predict.yaml" <<EOF
$model
$quantization
stage: sft
do_predict: true
finetuning_type: $(sed -n 's/^finetuning_type: //p' <<<"$keys")
eval_dataset: identity
dataset_dir: data
template: qwen
cutoff_len: 256
max_samples: $predict_samples
output_dir: $dir/predict
overwrite_output_dir: true
per_device_eval_batch_size: 8
predict_with_generate: true
do_sample: false
max_new_tokens: $max_new_tokens
EOF
  echo "== $method: predicting $predict_samples answers" >&2
  sharptune train "$dir/predict.yaml" 2>&1 | tee "$dir/predict.log" >&2

  trainable="$(sed -n 's/^.*\(trainable params: .*\)$/\1/p' "$dir/train.log" | head -n 1)"
  trainable="${trainable:--}"
  peak="$(sed -n 's/^.*peak resident memory: \([0-9.]* [KMG]B\).*$/\1/p' "$dir/train.log" | head -n 1)"
  runtime="$(result "$dir/train/all_results.json" train_runtime)"
  tokens="$(tail -n 1 "$dir/train/trainer_log.jsonl" | sed -n 's/^.*"total_tokens": *\([0-9]*\).*$/\1/p')"
  tokens_per_second="$(awk -v t="${tokens:-0}" -v r="$runtime" 'BEGIN { if (r + 0 > 0 && t > 0) printf "%.0f", t / r; else print "-" }')"
  eval_loss="$(round 3 "$(result "$dir/train/all_results.json" eval_loss)")"
  bleu="$(round 2 "$(result "$dir/predict/predict_results.json" predict_bleu-4)")"
  rouge="$(round 2 "$(result "$dir/predict/predict_results.json" predict_rouge-l)")"
  lr="$(sed -n 's/^learning_rate: //p' <<<"$keys")"
  own="$( (grep -v '^finetuning_type\|^learning_rate' <<<"$keys" || true) | tr '\n' ' ' | sed 's/ $//; s/ \([a-z_]*:\)/, \1/g')"
  rows+=("| $method | ${own:--} | $lr | ${trainable//|/\\|} | ${peak:--} | $tokens_per_second | $eval_loss | $bleu | $rouge |")
done

{
  echo "| method | its keys | learning_rate | trainable parameters (PEFT's line) | peak RSS | train tokens/s | final eval_loss | BLEU-4 | ROUGE-L |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$work/methods.md"
