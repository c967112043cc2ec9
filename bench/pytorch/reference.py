"""The PyTorch side of SharpTune's speed comparison (bench `report`): the same workloads with transformers + PEFT.

Run it on the machine being compared, on a model folder the bench generated (bench/.models/<preset>), e.g.

    python3 bench/pytorch/reference.py train   --model bench/.models/qwen2.5-0.5b-shape --seq 256
    python3 bench/pytorch/reference.py train   --model bench/.models/qwen2.5-0.5b-shape --seq 512 --gradient-checkpointing
    python3 bench/pytorch/reference.py prefill --model bench/.models/qwen2.5-0.5b-shape --seq 512
    python3 bench/pytorch/reference.py decode  --model bench/.models/qwen2.5-0.5b-shape --seq 32 --new-tokens 64

Each prints tokens/s (the median of --runs timed runs after one warm-up) and the process's peak RSS. Weights are
loaded as float32, as the figures quoted in README "Benchmarks" were measured (PyTorch 1.13, transformers 4.40,
PEFT 0.11, --threads 2). The LoRA step is SharpTune's bench `train` workload: r16, alpha 32, no dropout, all seven
projections, batch 1, every token carries loss, gradient clipping at 1.0 and one AdamW step.
"""
import argparse
import resource
import statistics
import time

import torch
from transformers import AutoModelForCausalLM

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def median_seconds(run, runs):
    run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train(model, args):
    from peft import LoraConfig, get_peft_model

    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=PROJECTIONS, task_type="CAUSAL_LM"))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, model.config.vocab_size, (1, args.seq))

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()

    return args.seq / median_seconds(step, args.runs)


@torch.no_grad()
def prefill(model, args):
    ids = torch.randint(0, model.config.vocab_size, (1, args.seq))
    return args.seq / median_seconds(lambda: model(input_ids=ids, use_cache=True), args.runs)


@torch.no_grad()
def decode(model, args):
    prompt = torch.randint(0, model.config.vocab_size, (1, args.seq))
    seconds = []

    def run():
        out = model(input_ids=prompt, use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        start = time.perf_counter()
        for _ in range(args.new_tokens):
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        seconds.append(time.perf_counter() - start)

    median_seconds(run, args.runs)
    return args.new_tokens / statistics.median(seconds[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=["train", "prefill", "decode"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32)
    tokens_per_s = {"train": train, "prefill": prefill, "decode": decode}[args.workload](model, args)
    print(f"{args.workload}_tokens_per_s {tokens_per_s:.2f}")
    print(f"peak_rss_mib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


if __name__ == "__main__":
    main()
