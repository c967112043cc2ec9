"""The PyTorch side of SharpTune's speed comparison: the bench's workloads in plain PyTorch (no transformers, no PEFT).

It needs only PyTorch (Debian's python3-torch 1.13 is enough). `SharpTune.Bench report --with-pytorch` and
`SharpTune.Bench sft --with-pytorch` run it in the same sitting; by hand, on a model folder the bench generated:

    /usr/bin/python3 bench/pytorch/workloads.py train   --model bench/.models/qwen2.5-0.5b-shape --seq 256 [--bf16]
    /usr/bin/python3 bench/pytorch/workloads.py prefill --model bench/.models/qwen2.5-0.5b-shape --seq 512
    /usr/bin/python3 bench/pytorch/workloads.py decode  --model bench/.models/qwen2.5-0.5b-shape --seq 32 --new-tokens 64
    /usr/bin/python3 bench/pytorch/workloads.py sft     --model bench/.models/qwen2.5-0.5b-shape --batches FILE.jsonl
    /usr/bin/python3 bench/pytorch/workloads.py verify  --fixtures tests/fixtures

Each prints JSON lines as the C# bench's --json does ({"workload", "preset", "seq", "metric", "value", "unit"}):
tokens/s (the median of --runs timed runs after one warm-up; sft: one timed pass over its batches), seconds, and the
process's peak RSS.

The model is what transformers 4.40's Qwen2ForCausalLM computes with eager attention: the Qwen2 layout read from
config.json and model.safetensors (parsed here: an 8-byte header length, a JSON header, raw little-endian bytes),
weights held in float32 as from_pretrained(torch_dtype=float32) holds them; RMSNorm in float32, rotate-half RoPE,
grouped-query attention as matmul + additive causal/padding mask + float32 softmax, SwiGLU, tied or untied lm_head,
logits in float32 and cross-entropy over the shifted labels (ignore -100). Training is PEFT's LoRA (r16, alpha 32,
no dropout, lora_A kaiming-uniform, lora_B zeros) on q, k, v, o, gate, up and down with the base frozen, as the
bench's train workload does: every token carries loss, gradients clipped at 1.0, one AdamW step (lr 1e-4, weight
decay 0.01). --bf16 runs forward and loss under torch.autocast("cpu", dtype=torch.bfloat16) over the float32
weights; --gradient-checkpointing recomputes each decoder layer in backward (torch.utils.checkpoint, reentrant, the
embedding output made to require grad as PEFT's enable_input_require_grads does). prefill computes the last row's
logits only, as SharpTune's prefill does; decode grows a concatenated KV cache as transformers' DynamicCache does.
sft reads the batches SharpTune.Bench sft wrote with SharpTune's tokenizer (one JSON object per line, each a list of
examples with input_ids and labels), pads each batch to its longest example (pad id, mask 0, labels -100) and
computes the logits of every position, as transformers does under LLaMA-Factory.

`verify` checks the model against Hugging Face's own numbers in tests/fixtures (qwen2-small-vocab and lora, made with
transformers 4.40.2 + PEFT 0.11.1 on the same PyTorch; see their READMEs): the base model's loss on the padded
fixture batch, its greedy generation through the KV cache, the LoRA adapter's loss, its gradients' total norm and the
loss after one AdamW step. See bench/pytorch/README.md for the tolerances and the last result.
"""
import argparse
import json
import math
import os
import resource
import statistics
import struct
import time

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SAFETENSORS_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def read_safetensors(path, dtype):
    """Every tensor of a .safetensors file converted to dtype, read one tensor at a time (the peak is the converted
    tensors plus one raw tensor, not the whole file twice)."""
    tensors = {}
    with open(path, "rb") as f:
        (header_length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_length))
        header.pop("__metadata__", None)
        for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
            if info["dtype"] not in SAFETENSORS_DTYPES:
                raise ValueError(f"{path}: tensor {name}: dtype {info['dtype']} is not one of {sorted(SAFETENSORS_DTYPES)}")
            start, end = info["data_offsets"]
            f.seek(8 + header_length + start)
            raw = bytearray(end - start)
            if f.readinto(raw) != len(raw):
                raise ValueError(f"{path}: tensor {name}: the file ends inside its data")
            stored = torch.frombuffer(raw, dtype=SAFETENSORS_DTYPES[info["dtype"]]) if raw else torch.empty(0, dtype=SAFETENSORS_DTYPES[info["dtype"]])
            tensors[name] = stored.reshape(info["shape"]).to(dtype)
    return tensors


class Linear(torch.nn.Module):
    """A frozen projection (weight [out, in], optional bias), with PEFT's LoRA beside it when rank > 0:
    y = x·Wᵀ + b + (x·Aᵀ)·Bᵀ · alpha/rank."""

    def __init__(self, weight, bias, rank, alpha):
        super().__init__()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        self.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)
        self.rank = rank
        if rank > 0:
            self.lora_A = torch.nn.Parameter(torch.empty(rank, weight.shape[1]))
            self.lora_B = torch.nn.Parameter(torch.zeros(weight.shape[0], rank))
            torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.scaling = alpha / rank

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        if self.rank > 0:
            y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling
        return y


def rms_norm(x, weight, eps):
    dtype = x.dtype
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Layer(torch.nn.Module):
    def __init__(self, config, weights, prefix, rank, alpha):
        super().__init__()
        self.heads = config["num_attention_heads"]
        self.kv_heads = config.get("num_key_value_heads", self.heads)
        self.head_dim = config["hidden_size"] // self.heads
        self.eps = config["rms_norm_eps"]
        self.input_norm = torch.nn.Parameter(weights[prefix + "input_layernorm.weight"], requires_grad=False)
        self.post_norm = torch.nn.Parameter(weights[prefix + "post_attention_layernorm.weight"], requires_grad=False)
        for name in PROJECTIONS:
            path = prefix + ("self_attn." if name in PROJECTIONS[:4] else "mlp.") + name
            setattr(self, name, Linear(weights[path + ".weight"], weights.get(path + ".bias"), rank, alpha))

    def forward(self, h, cos, sin, mask, cache=None):
        b, t, _ = h.shape
        x = rms_norm(h, self.input_norm, self.eps)
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if cache:
                k, v = torch.cat((cache[0], k), dim=2), torch.cat((cache[1], v), dim=2)
            cache[:] = [k, v]
        group = self.heads // self.kv_heads
        if group > 1:
            k = k[:, :, None].expand(b, self.kv_heads, group, k.shape[2], self.head_dim).reshape(b, self.heads, k.shape[2], self.head_dim)
            v = v[:, :, None].expand(b, self.kv_heads, group, v.shape[2], self.head_dim).reshape(b, self.heads, v.shape[2], self.head_dim)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        attention = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, self.heads * self.head_dim)
        h = h + self.o_proj(attention)
        x = rms_norm(h, self.post_norm, self.eps)
        return h + self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Qwen2(torch.nn.Module):
    """Qwen2ForCausalLM's computation over a model folder's weights (see the module's docstring)."""

    def __init__(self, folder, dtype=torch.float32, rank=0, alpha=0, gradient_checkpointing=False):
        super().__init__()
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        weights = read_safetensors(os.path.join(folder, "model.safetensors"), dtype)
        self.vocab_size = config["vocab_size"]
        self.eps = config["rms_norm_eps"]
        self.embed = torch.nn.Parameter(weights["model.embed_tokens.weight"], requires_grad=False)
        self.norm = torch.nn.Parameter(weights["model.norm.weight"], requires_grad=False)
        tied = config.get("tie_word_embeddings", False) or "lm_head.weight" not in weights
        self.lm_head = self.embed if tied else torch.nn.Parameter(weights["lm_head.weight"], requires_grad=False)
        self.layers = torch.nn.ModuleList(
            Layer(config, weights, f"model.layers.{i}.", rank, alpha) for i in range(config["num_hidden_layers"]))
        head_dim = config["hidden_size"] // config["num_attention_heads"]
        self.inv_freq = 1.0 / (config.get("rope_theta", 10000.0) ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
        self.gradient_checkpointing = gradient_checkpointing

    def forward(self, ids, attention_mask=None, past=0, caches=None, last_row_only=False):
        """Logits (float32) for ids [batch, t] at positions past..past+t-1; attention_mask [batch, past+t] marks
        the real keys (None: all). caches: one list per layer that the layer fills and extends."""
        b, t = ids.shape
        h = F.embedding(ids, self.embed)
        if self.gradient_checkpointing and self.training:
            h.requires_grad_(True)
        angles = torch.outer(torch.arange(past, past + t, dtype=torch.float32), self.inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        cos, sin = angles.cos(), angles.sin()
        minimum = torch.finfo(torch.float32).min
        mask = torch.full((t, past + t), minimum).triu(past + 1)[None, None].expand(b, 1, t, past + t)
        if attention_mask is not None:
            mask = mask.masked_fill(attention_mask[:, None, None, :] == 0, minimum)
        for i, layer in enumerate(self.layers):
            cache = None if caches is None else caches[i]
            if self.gradient_checkpointing and self.training:
                h = checkpoint(layer, h, cos, sin, mask, cache, use_reentrant=True)
            else:
                h = layer(h, cos, sin, mask, cache)
        if last_row_only:
            h = h[:, -1:]
        return F.linear(rms_norm(h, self.norm, self.eps), self.lm_head).float()

    def loss(self, ids, labels, attention_mask=None):
        logits = self.forward(ids, attention_mask)
        return F.cross_entropy(logits[:, :-1].reshape(-1, self.vocab_size), labels[:, 1:].reshape(-1), ignore_index=-100)

    def lora_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]


def median_seconds(run, runs):
    run()
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def autocast(bf16):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def training_step(model, optimizer, bf16):
    """One step as the bench's train workload takes it: zero grads, forward and loss (under autocast when bf16),
    backward, clip at 1.0, AdamW."""
    trainable = model.lora_parameters()

    def step(ids, labels, attention_mask=None):
        optimizer.zero_grad(set_to_none=True)
        with autocast(bf16):
            loss = model.loss(ids, labels, attention_mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        return loss

    return step


def lora_model(args):
    model = Qwen2(args.model, rank=args.lora_rank, alpha=2 * args.lora_rank, gradient_checkpointing=args.gradient_checkpointing)
    model.train()
    return model, torch.optim.AdamW(model.lora_parameters(), lr=1e-4, weight_decay=0.01)


def train(args, report):
    model, optimizer = lora_model(args)
    step = training_step(model, optimizer, args.bf16)
    ids = torch.randint(0, model.vocab_size, (args.batch, args.seq))
    seconds = median_seconds(lambda: step(ids, ids), args.runs)
    report("train_tokens_per_s", args.batch * args.seq / seconds, "tokens/s")
    report("train_seconds_per_step", seconds, "s")


def inference_model(args):
    model = Qwen2(args.model, dtype=torch.bfloat16 if args.dtype == "bfloat16" else torch.float32)
    model.eval()
    return model


@torch.no_grad()
def prefill(args, report):
    model = inference_model(args)
    ids = torch.randint(0, model.vocab_size, (1, args.seq))
    seconds = median_seconds(lambda: model(ids, caches=[[] for _ in model.layers], last_row_only=True), args.runs)
    report("prefill_tokens_per_s", args.seq / seconds, "tokens/s")
    report("prefill_ms_per_run", seconds * 1e3, "ms")


@torch.no_grad()
def greedy(model, prompt, new_tokens):
    """Greedy decoding after prefilling prompt [1, t]: the new ids and the seconds the new tokens took."""
    caches = [[] for _ in model.layers]
    token = model(prompt, caches=caches, last_row_only=True)[:, -1].argmax(-1, keepdim=True)
    new_ids = []
    start = time.perf_counter()
    for i in range(new_tokens):
        new_ids.append(token.item())
        token = model(token, past=prompt.shape[1] + i, caches=caches)[:, -1].argmax(-1, keepdim=True)
    return new_ids, time.perf_counter() - start


def decode(args, report):
    model = inference_model(args)
    prompt = torch.randint(0, model.vocab_size, (1, args.seq))
    seconds = []
    median_seconds(lambda: seconds.append(greedy(model, prompt, args.new_tokens)[1]), args.runs)
    per_run = statistics.median(seconds[1:])
    report("decode_tokens_per_s", args.new_tokens / per_run, "tokens/s")
    report("decode_ms_per_token", per_run / args.new_tokens * 1e3, "ms")


def sft(args, report):
    """Training on real data: loads the model and the batches SharpTune.Bench sft wrote, then trains one step per
    batch; the whole run (loading included) is what the bench times from outside."""
    model, optimizer = lora_model(args)
    step = training_step(model, optimizer, args.bf16)
    with open(args.batches) as f:
        header = json.loads(f.readline())
        batches = [json.loads(line) for line in f if line.strip()]
    pad = header["pad_token_id"]
    tokens = 0
    start = time.perf_counter()
    for number, examples in enumerate(batches, start=2):
        length = max(len(e["input_ids"]) for e in examples)
        if any(len(e["labels"]) != len(e["input_ids"]) for e in examples):
            raise ValueError(f"{args.batches}: line {number}: an example's labels and input_ids differ in length")
        ids = torch.tensor([e["input_ids"] + [pad] * (length - len(e["input_ids"])) for e in examples])
        labels = torch.tensor([e["labels"] + [-100] * (length - len(e["labels"])) for e in examples])
        mask = torch.tensor([[1] * len(e["input_ids"]) + [0] * (length - len(e["input_ids"])) for e in examples])
        step(ids, labels, mask)
        tokens += sum(len(e["input_ids"]) for e in examples)
    seconds = time.perf_counter() - start
    report("sft_steps", len(batches), "steps")
    report("sft_tokens", tokens, "tokens")
    report("sft_train_tokens_per_s", tokens / seconds, "tokens/s (training loop only)")


def verify(args, report):
    """Compares the model with the Hugging Face references in the fixtures; fails on the first mismatch."""
    base = os.path.join(args.fixtures, "qwen2-small-vocab")
    lora = os.path.join(args.fixtures, "lora")
    with open(os.path.join(base, "reference", "reference.json")) as f:
        reference = json.load(f)
    with open(os.path.join(lora, "reference", "reference.json")) as f:
        lora_reference = json.load(f)
    batch = reference["batch"]
    ids, mask, labels = (torch.tensor(batch[k]) for k in ("input_ids", "attention_mask", "labels"))

    def check(name, ours, theirs, tolerance):
        report(f"verify.{name}", ours, f"(Hugging Face: {theirs}; difference {ours - theirs:.1e})")
        if abs(ours - theirs) > tolerance:
            raise SystemExit(f"verify: {name} is {ours}, Hugging Face's is {theirs} (tolerance {tolerance})")

    torch.use_deterministic_algorithms(True)
    model = Qwen2(base)
    model.eval()
    with torch.no_grad():
        check("base_loss", model.loss(ids, labels, mask).item(), reference["forward"]["loss"], 1e-5)
        generation = reference["generation"]
        new_ids, _ = greedy(model, torch.tensor([generation["prompt_ids"]]), generation["max_new_tokens"])
        mismatches = sum(a != b for a, b in zip(new_ids, generation["greedy"]["new_ids"]))
        check("greedy_mismatched_ids", mismatches, 0, 0)

    config = lora_reference["lora_config"]
    adapter = read_safetensors(os.path.join(lora, "adapter_model.safetensors"), torch.float32)

    def with_adapter(gradient_checkpointing):
        model = Qwen2(base, rank=config["r"], alpha=config["lora_alpha"], gradient_checkpointing=gradient_checkpointing)
        for i, layer in enumerate(model.layers):
            for name in PROJECTIONS:
                path = f"base_model.model.model.layers.{i}.{'self_attn' if name in PROJECTIONS[:4] else 'mlp'}.{name}"
                getattr(layer, name).lora_A.data.copy_(adapter[path + ".lora_A.weight"])
                getattr(layer, name).lora_B.data.copy_(adapter[path + ".lora_B.weight"])
        model.train()
        return model

    def grad_norm(model):
        return torch.sqrt(sum(p.grad.pow(2).sum() for p in model.lora_parameters())).item()

    steps = lora_reference["training"]["steps"]
    # Checkpointing recomputes the same products, so its gradients match as closely; bf16 autocast rounds every
    # product's inputs to 8 bits of mantissa, so its loss only agrees to about 1%.
    checkpointed = with_adapter(gradient_checkpointing=True)
    checkpointed.loss(ids, labels, mask).backward()
    check("lora_grad_norm_checkpointed", grad_norm(checkpointed), steps[0]["grad_total_l2_norm"], 1e-4)
    with autocast(True):
        check("lora_loss_bf16_autocast", checkpointed.loss(ids, labels, mask).item(), steps[0]["loss_before_step"], 0.05)
    model = with_adapter(gradient_checkpointing=False)
    optimizer = torch.optim.AdamW(model.lora_parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    loss = model.loss(ids, labels, mask)
    check("lora_loss", loss.item(), steps[0]["loss_before_step"], 1e-5)
    loss.backward()
    check("lora_grad_norm", grad_norm(model), steps[0]["grad_total_l2_norm"], 1e-4)
    optimizer.step()
    check("lora_loss_after_adamw_step", model.loss(ids, labels, mask).item(), steps[1]["loss_before_step"], 1e-5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=["train", "prefill", "decode", "sft", "verify"])
    parser.add_argument("--model", help="a model folder the bench generated (bench/.models/PRESET)")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: every core)")
    parser.add_argument("--bf16", action="store_true", help="train under torch.autocast(cpu, bfloat16)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="prefill/decode: the weights' and compute dtype")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--batches", help="sft: the batches file SharpTune.Bench sft wrote")
    parser.add_argument("--fixtures", default="tests/fixtures", help="verify: the repository's tests/fixtures")
    args = parser.parse_args()
    if args.workload not in ("verify",) and not args.model:
        parser.error(f"{args.workload} needs --model")
    if args.workload == "sft" and not args.batches:
        parser.error("sft needs --batches")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    preset = os.path.basename(os.path.normpath(args.model)) if args.model else "fixtures"

    def report(metric, value, unit):
        print(json.dumps({"workload": args.workload, "preset": preset, "seq": args.seq, "metric": metric, "value": round(float(value), 3), "unit": unit}), flush=True)

    {"train": train, "prefill": prefill, "decode": decode, "sft": sft, "verify": verify}[args.workload](args, report)
    report("peak_rss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MiB")


if __name__ == "__main__":
    main()
