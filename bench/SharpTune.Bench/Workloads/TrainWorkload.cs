using SharpTune.Engine;
using SharpTune.Foundation;
using System.Globalization;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Quantization;
using SharpTune.Training;
using SharpTune.FineTuning;
using SharpTune.Training.Model;
using SharpTune.Training.Objectives;
using SharpTune.Training.Optim;

namespace SharpTune.Bench;

/// <summary>
/// One whole optimizer step (forward, backward, gradient clipping, AdamW) of a fine-tuning method on a generated
/// --preset model: --method lora|full|freeze, --batch rows of --seq random tokens that all carry loss (--prompt-share
/// F: the first F of each row is a prompt labelled −100; --min-seq N: the rows' lengths run evenly from N up to --seq,
/// right-padded to --seq, and tokens/s counts real tokens; --padding-free false computes the padding too, as the
/// decoder did before),
/// --lora-rank (LoRA on all seven projections), --gradient-checkpointing, --quantization-bit 4|8 with
/// --quantization-type nf4|fp4 (QLoRA: the projections quantised, double quantisation on as LLaMA-Factory defaults),
/// --optim adamw_torch|adamw_8bit|paged_adamw_32bit|paged_adamw_8bit; --profile true adds the time per part of the step;
/// --with-pytorch true first runs the same LoRA step in plain PyTorch (<see cref="PyTorchSide"/>; --bf16 as autocast).
/// --stage dpo makes each of the --batch rows a pair (a chosen and a rejected sequence of --seq tokens, the second half
/// of each carrying loss) trained with pref_loss sigmoid against the reference its method gets (LoRA: the policy with
/// its tuners disabled; full/freeze: a frozen copy), and reports pairs/s and the step's time against its ideal: one
/// policy forward and backward over both sequences plus one reference forward, each timed alone (peak RSS is the
/// program's closing line).
/// </summary>
public sealed class TrainWorkload : IWorkload
{
    public string Name => "train";

    public string Description => "training tokens/s of a whole optimizer step (--method lora|full|freeze, --batch, --lora-rank, --gradient-checkpointing, --quantization-bit 4|8, --quantization-type nf4|fp4, --optim, --bf16, --stage sft|dpo, --prompt-share, --min-seq, --padding-free, --with-pytorch)";

    public int DefaultSeq => 256;

    public void Run(BenchContext context)
    {
        string folder = BenchModels.Ensure(context.Preset, context.Json, context.Option("dtype", "bfloat16"));
        string method = context.Option("method", "lora");
        int batch = int.Parse(context.Option("batch", "1"), CultureInfo.InvariantCulture);
        int rank = int.Parse(context.Option("lora-rank", "16"), CultureInfo.InvariantCulture);
        bool checkpointing = bool.Parse(context.Option("gradient-checkpointing", "false"));
        string bits = context.Option("quantization-bit", "none");
        string type = context.Option("quantization-type", "nf4");
        QuantizationOptions? quantization = bits switch
        {
            "none" => null,
            "4" or "8" => new QuantizationOptions(int.Parse(bits, CultureInfo.InvariantCulture), type switch
            {
                "nf4" => FourBitType.Nf4,
                "fp4" => FourBitType.Fp4,
                _ => throw new ArgumentException($"--quantization-type must be nf4 or fp4, not '{type}'"),
            }),
            _ => throw new ArgumentException($"--quantization-bit must be 4 or 8, not '{bits}'"),
        };
        var args = new FinetuningArguments
        {
            FinetuningType = method switch
            {
                "lora" => FinetuningType.Lora,
                "full" => FinetuningType.Full,
                "freeze" => FinetuningType.Freeze,
                _ => throw new ArgumentException($"--method must be lora, full or freeze, not '{method}'"),
            },
            LoraRank = rank,
            LoraTarget = ["all"],
        };
        string optim = context.Option("optim", OptimizerNames.AdamWTorch);
        bool bf16 = bool.Parse(context.Option("bf16", "false"));
        if (bf16 && Bf16ComputeMatrix.AvailableKernel is null)
            throw new InvalidOperationException($"--bf16: {Bf16ComputeMatrix.Unavailable}");
        string stage = context.Option("stage", "sft");
        if (PyTorchSide.Requested(context))
        {
            if (method != "lora" || quantization is not null || optim != OptimizerNames.AdamWTorch || stage != "sft")
                throw new ArgumentException("--with-pytorch compares the LoRA sft step with adamw_torch and no quantization only");
            PyTorchSide.Run(context, "train", folder, ["--seq", context.Seq.ToString(CultureInfo.InvariantCulture), "--batch", batch.ToString(CultureInfo.InvariantCulture),
                "--lora-rank", rank.ToString(CultureInfo.InvariantCulture), .. bf16 ? ["--bf16"] : Array.Empty<string>(),
                .. checkpointing ? ["--gradient-checkpointing"] : Array.Empty<string>()]);
        }
        using var model = TrainableModels.Create(folder, args, checkpointing, new SeededRandom(0), [], quantization, bf16);
        model.Decoder!.PaddingFree = bool.Parse(context.Option("padding-free", "true"));
        if (!context.Json)
            Console.WriteLine($"# {method}{(method == "lora" ? $" r{rank} on all projections" : "")}{(quantization is null ? "" : $", projections {quantization}")}, batch {batch}, gradient checkpointing {(checkpointing ? "on" : "off")}, optim {optim}, {(bf16 ? "bf16" : "fp32")} compute; {TrainableModels.Summary(model)}");

        if (stage == "dpo")
        {
            RunDpo(context, model, folder, batch, checkpointing, optim);
            return;
        }
        if (stage != "sft") throw new ArgumentException($"--stage must be sft or dpo, not '{stage}'");

        var trainingBatch = SftBatch(context, batch);
        int tokens = trainingBatch.RealTokens;
        if (!context.Json)
            Console.WriteLine($"# sft: {tokens} real tokens in {batch} × {context.Seq}, {LabelTokens.Of(trainingBatch).Count} carrying loss, padding {(model.Decoder.PaddingFree ? "not computed" : "computed")}");
        using var optimizer = OptimizerNames.Create(optim, model.TrainableParameters, new TrainingArguments { WeightDecay = 0.01 });
        var dropout = new SeededRandom(1);

        void Step()
        {
            foreach (var p in model.TrainableParameters) p.ZeroGrad();
            model.ForwardBackward(trainingBatch, 1f, dropout);
            using var optimizerScope = StepProfile.Measure(StepSection.Optimizer);
            GradientClipping.Clip(model.TrainableParameters, 1.0);
            optimizer.Update(1e-4);
        }
        var cpuBefore = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
        double seconds = context.MedianSeconds(Step);
        // CPU time per step (the warm-up included) tells more than wall time on a machine others load too.
        double cpuSeconds = (System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds / (Math.Max(1, context.Runs) + 1);

        context.Report("train_tokens_per_s", tokens / seconds, "tokens/s");
        context.Report("train_seconds_per_step", seconds, "s");
        context.Report("train_cpu_seconds_per_step", cpuSeconds, "s (all threads; the mean over the warm-up and timed steps)");
        if (args.FinetuningType == FinetuningType.Lora && tokens == batch * context.Seq && context.Option("prompt-share", "0") == "0")
        {
            var config = SharpTune.Model.ModelConfig.Load(Path.Combine(folder, "config.json"));
            context.Report("train_gflops", LoraStepFlops(config, batch, context.Seq, rank) / seconds / 1e9, "GFLOP/s");
        }
        context.Report("optimizer_state", optimizer.StateBytes / (1024.0 * 1024.0), "MiB");
        if (bool.Parse(context.Option("profile", "false"))) Profile(context, Step);
    }

    /// <summary>
    /// --batch rows of random tokens: row r is --seq long, or with --min-seq N its length runs evenly from N (row 0)
    /// to --seq (the last row), right-padded; the first --prompt-share of each row's tokens is labelled −100.
    /// </summary>
    private static TrainingBatch SftBatch(BenchContext context, int batch)
    {
        int t = context.Seq;
        int shortest = int.Parse(context.Option("min-seq", t.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        double promptShare = double.Parse(context.Option("prompt-share", "0"), CultureInfo.InvariantCulture);
        if (shortest < 2 || shortest > t) throw new ArgumentException($"--min-seq must be from 2 to --seq ({t}), got {shortest}");
        if (promptShare is < 0 or >= 1) throw new ArgumentException($"--prompt-share must be at least 0 and below 1, got {promptShare}");
        var random = new Random(0);
        int vocab = SharpTune.Model.ModelPreset.Get(context.Preset).VocabSize;
        var ids = new int[batch * t];
        var mask = new int[ids.Length];
        var labels = Enumerable.Repeat(CausalLmLoss.IgnoreIndex, ids.Length).ToArray();
        for (int b = 0; b < batch; b++)
        {
            int length = batch == 1 ? t : shortest + (t - shortest) * b / (batch - 1), prompt = (int)(promptShare * length);
            for (int i = 0; i < length; i++)
            {
                ids[b * t + i] = random.Next(vocab);
                mask[b * t + i] = 1;
                if (i >= prompt) labels[b * t + i] = ids[b * t + i];
            }
        }
        return new TrainingBatch(batch, t, ids, mask, labels);
    }

    /// <summary>
    /// Multiply-add flops of one LoRA step (2 per multiply-accumulate) over batch rows of length T, every token
    /// carrying loss; norms, RoPE, SwiGLU, softmax and the optimizer are O(T·hidden) and left out:
    ///   frozen projections  2·P·T forward + 2·P·T for their input gradients (P = the layers' projection parameters),
    ///   lm_head             2·V·H·(T−1) forward + the same for its input gradient (the last position has no label),
    ///   attention           7 products of 2·d·T(T+1)/2 per head and layer under the causal mask (QKᵀ and P·V
    ///                       forward; QKᵀ again, dO·Vᵀ, dQ, dK and dV backward),
    ///   LoRA                6·T·r·(in + out) per adapted projection (x·Aᵀ and ·Bᵀ forward; dB, dxa, dA, dx backward).
    /// </summary>
    private static double LoraStepFlops(SharpTune.Model.ModelConfig c, int batch, int t, int rank)
    {
        double rows = (double)batch * t;
        double projections = 4.0 * BenchModels.LayerMatrixParams(c) * rows;
        double lmHead = 4.0 * c.VocabSize * c.HiddenSize * batch * (t - 1.0);
        double attention = 7.0 * c.NumLayers * c.NumHeads * c.HeadDim * (double)t * (t + 1) * batch;
        double inOut = c.HiddenSize + c.QueryWidth + 2.0 * (c.HiddenSize + c.KvWidth) + c.QueryWidth + c.HiddenSize
            + 2.0 * (c.HiddenSize + c.IntermediateSize) + c.IntermediateSize + c.HiddenSize;
        double lora = 6.0 * rows * rank * inOut * c.NumLayers;
        return projections + lmHead + attention + lora;
    }

    /// <summary>
    /// A DPO step on --batch random pairs (rows 0..n−1 chosen, n..2n−1 rejected; the first half of each sequence is
    /// the prompt, labelled −100): the reference pass, the policy's forward and backward through
    /// <see cref="PairwiseStep"/>, clipping and AdamW; then the ideal's parts timed alone.
    /// </summary>
    private static void RunDpo(BenchContext context, ITrainableModel model, string folder, int pairs, bool checkpointing, string optim)
    {
        int t = context.Seq, rows = 2 * pairs, tokens = rows * t;
        var random = new Random(0);
        int vocab = SharpTune.Model.ModelPreset.Get(context.Preset).VocabSize;
        int[] ids = Enumerable.Range(0, tokens).Select(_ => random.Next(vocab)).ToArray();
        int[] labels = ids.Select((id, i) => i % t < t / 2 ? CausalLmLoss.IgnoreIndex : id).ToArray();
        var pairBatch = new TrainingBatch(rows, t, ids, Enumerable.Repeat(1, tokens).ToArray(), labels);
        var policy = model.Decoder!;
        using var reference = SharpTune.Training.Preference.ReferenceModel.ForPolicy(policy, () => DecoderModel.Load(folder, gradientCheckpointing: true));
        var step = new SharpTune.Training.Preference.PairwiseStep(policy, reference, SharpTune.Training.Preference.PairLoss.Create("sigmoid", 0.1), 0);
        using var optimizer = OptimizerNames.Create(optim, model.TrainableParameters, new TrainingArguments { WeightDecay = 0.01 });
        var dropout = new SeededRandom(1);
        if (!context.Json)
            Console.WriteLine($"# dpo: {pairs} pair(s) of 2 × {t} tokens, reference {(reference.ExtraBytes == 0 ? "the policy with its tuners disabled" : $"a frozen copy ({reference.ExtraBytes / (1024.0 * 1024.0):F0} MiB)")}, gradient checkpointing {(checkpointing ? "on" : "off")}");

        void Step()
        {
            foreach (var p in model.TrainableParameters) p.ZeroGrad();
            step.Train(pairBatch, 1f, dropout);
            GradientClipping.Clip(model.TrainableParameters, 1.0);
            optimizer.Update(1e-4);
        }
        double seconds = context.MedianSeconds(Step);
        double policySeconds = context.MedianSeconds(() =>
        {
            foreach (var p in model.TrainableParameters) p.ZeroGrad();
            model.ForwardBackward(pairBatch, 1f, dropout);
        });
        double referenceSeconds = context.MedianSeconds(() => reference.LogProbSums(pairBatch));
        double optimizerSeconds = context.MedianSeconds(() =>
        {
            GradientClipping.Clip(model.TrainableParameters, 1.0);
            optimizer.Update(1e-4);
        });
        double ideal = policySeconds + referenceSeconds + optimizerSeconds;

        context.Report("dpo_pairs_per_s", pairs / seconds, "pairs/s");
        context.Report("dpo_tokens_per_s", tokens / seconds, "tokens/s");
        context.Report("dpo_seconds_per_step", seconds, "s");
        context.Report("dpo_ideal_seconds_per_step", ideal, $"s (policy forward+backward {policySeconds:F3} + reference forward {referenceSeconds:F3} + clip/AdamW {optimizerSeconds:F3})");
        context.Report("dpo_step_over_ideal", seconds / ideal, "×");
    }

    /// <summary>Seconds per step in each <see cref="StepSection"/>, averaged over --runs further steps.</summary>
    private static void Profile(BenchContext context, Action step)
    {
        var profile = new StepProfile();
        StepProfile.Active = profile;
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            for (int i = 0; i < context.Runs; i++) step();
        }
        finally
        {
            StepProfile.Active = null;
        }
        double total = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds / context.Runs;
        double counted = 0;
        foreach (var (section, sum) in profile.Seconds)
        {
            double perStep = sum / context.Runs;
            counted += perStep;
            context.Report($"profile.{section}", perStep * 1000, $"ms/step ({100 * perStep / total:F1}%)");
        }
        context.Report("profile.Unmeasured", (total - counted) * 1000, $"ms/step ({100 * (total - counted) / total:F1}%)");
    }
}
