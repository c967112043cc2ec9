using System.Globalization;
using System.Text.Json;
using SharpTune.Data;
using SharpTune.Foundation;
using SharpTune.Hparams;
using SharpTune.IO;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Bench;

/// <summary>
/// Training on real data end to end: `sharptune train` (the CLI built next to this bench) LoRA-tunes the generated
/// --preset model (default qwen2.5-0.5b-shape) on LLaMA-Factory's alpaca_zh_demo (the copy bundled in
/// tests/fixtures/llamafactory) with template qwen, cutoff_len --seq (512), --batch (4) examples a step, --lora-rank
/// (16) on all seven projections, for --steps (20) steps, gradient checkpointing as LLaMA-Factory defaults it (on;
/// --gradient-checkpointing false turns it off), --bf16 true for bf16 compute. tokens/s is the tokens trained over the
/// process's whole wall-clock time: start-up, model and data loading (reading, templating and tokenizing all 1,000
/// records) and saving the adapter included. --with-pytorch true first writes the same batches (this bench tokenizes
/// with SharpTune's tokenizer and takes the examples in the trainer's order) for bench/pytorch/workloads.py sft, which
/// pads each batch and trains on it in plain PyTorch; its tokens/s is over its process's wall-clock time too.
/// </summary>
public sealed class SftWorkload : IWorkload
{
    public string Name => "sft";

    public string Description => "`sharptune train` LoRA on alpaca_zh_demo, tokens/s with data loading (--steps, --batch, --seq = cutoff_len, --bf16, --gradient-checkpointing, --with-pytorch)";

    public int DefaultSeq => 512;

    public void Run(BenchContext context)
    {
        string model = BenchModels.Ensure(context.Preset, context.Json);
        int batch = int.Parse(context.Option("batch", "4"), CultureInfo.InvariantCulture);
        int steps = int.Parse(context.Option("steps", "20"), CultureInfo.InvariantCulture);
        int rank = int.Parse(context.Option("lora-rank", "16"), CultureInfo.InvariantCulture);
        bool bf16 = bool.Parse(context.Option("bf16", "false"));
        bool checkpointing = bool.Parse(context.Option("gradient-checkpointing", "true"));
        string name = $"{context.Preset}-b{batch}-s{context.Seq}-{steps}steps{(bf16 ? "-bf16" : "")}{(checkpointing ? "" : "-nockpt")}";
        string work = Path.Combine(BenchModels.RepoRoot, "bench", ".models", "sft-runs", name);
        Directory.CreateDirectory(work);
        string config = Path.Combine(work, "train.yaml");
        AtomicFile.WriteText(config, string.Join('\n',
        [
            $"model_name_or_path: {JsonSerializer.Serialize(model)}", "stage: sft", "do_train: true", "finetuning_type: lora",
            $"lora_rank: {rank}", "lora_target: all", "dataset: alpaca_zh_demo",
            $"dataset_dir: {JsonSerializer.Serialize(Path.Combine(BenchModels.RepoRoot, "tests", "fixtures", "llamafactory"))}",
            "template: qwen", $"cutoff_len: {context.Seq}", $"per_device_train_batch_size: {batch}", $"max_steps: {steps}",
            $"logging_steps: {steps}", "save_strategy: \"no\"", "learning_rate: 1.0e-4", $"bf16: {(bf16 ? "true" : "false")}",
            $"disable_gradient_checkpointing: {(checkpointing ? "false" : "true")}", "seed: 42", "overwrite_output_dir: true",
            $"output_dir: {JsonSerializer.Serialize(Path.Combine(work, "out"))}", "",
        ]));
        if (!context.Json)
            Console.WriteLine($"# sharptune train {config}: LoRA r{rank} on all projections, alpaca_zh_demo, batch {batch}, cutoff_len {context.Seq}, {steps} step(s), gradient checkpointing {(checkpointing ? "on" : "off")}, {(bf16 ? "bf16" : "fp32")} compute");

        long? pyTorchTokens = null;
        if (PyTorchSide.Requested(context))
        {
            string batches = Path.Combine(work, "batches.jsonl");
            long written = WriteBatches(config, steps, batches);
            var (results, wall) = PyTorchSide.Run(context, "sft", model, ["--batches", batches, "--seq", context.Seq.ToString(CultureInfo.InvariantCulture),
                "--lora-rank", rank.ToString(CultureInfo.InvariantCulture), .. bf16 ? ["--bf16"] : Array.Empty<string>(),
                .. checkpointing ? ["--gradient-checkpointing"] : Array.Empty<string>()]);
            pyTorchTokens = (long)(results.FirstOrDefault(r => r.Metric == "sft_tokens")?.Value
                ?? throw new InvalidDataException($"{PyTorchSide.Script} sft reported no sft_tokens"));
            if (pyTorchTokens != written)
                throw new InvalidDataException($"{PyTorchSide.Script} sft trained {pyTorchTokens} tokens of the {written} written to {batches}");
            context.Report("pytorch.sft_tokens_per_s", written / wall, "tokens/s (whole process)");
            context.Report("pytorch.sft_seconds", wall, "s");
        }

        var run = BenchModels.RunSharpTuneTrain(config);
        long tokens = TotalTokens(Path.Combine(work, "out", "trainer_log.jsonl"));
        if (pyTorchTokens is { } expected && expected != tokens)
            throw new InvalidDataException($"sharptune train trained {tokens} tokens but the batches written for PyTorch hold {expected}: {nameof(WriteBatches)} no longer takes the examples in the trainer's order");
        context.Report("sft_tokens_per_s", tokens / run.WallSeconds, "tokens/s (whole process)");
        context.Report("sft_seconds", run.WallSeconds, "s");
        context.Report("sft_tokens", tokens, "tokens");
        context.Report("sft_train_peak_rss", run.PeakMegabytes * 1e6 / (1024.0 * 1024.0), "MiB");
    }

    /// <summary>
    /// Writes the batches the first <paramref name="steps"/> steps of `sharptune train CONFIG` train on, as
    /// bench/pytorch/workloads.py sft reads them: a first line {"pad_token_id": N}, then one line per batch, a JSON array
    /// of its examples' {"input_ids", "labels"} (unpadded). The examples are prepared by <see cref="SupervisedDatasets"/>
    /// as the trainer's data is, and taken in the trainer's order (each epoch a shuffle of the training examples by one
    /// <see cref="SeededRandom"/> seeded with the config's seed, as SftTrainer draws it). Returns the tokens written.
    /// </summary>
    private static long WriteBatches(string config, int steps, string path)
    {
        var cfg = SftConfig.Load(config, [], ConfigUse.Train);
        string modelDir = cfg.Model.ModelNameOrPath;
        var tokenizer = Tokenizer.FromDirectory(modelDir);
        var template = ChatTemplates.ForModel(cfg.Data.Template ?? "auto", modelDir, tokenizer);
        var train = SupervisedDatasets.Load(cfg.Data, tokenizer, template, cfg.Training.Seed).Train;
        int batchSize = cfg.Training.PerDeviceTrainBatchSize;
        var order = new SeededRandom((ulong)cfg.Training.Seed);
        var batches = new List<SupervisedExample[]>();
        while (batches.Count < steps)
        {
            int[] epoch = Enumerable.Range(0, train.Count).ToArray();
            order.Shuffle(epoch);
            batches.AddRange(epoch.Chunk(batchSize).Select(chunk => chunk.Select(i => train[i]).ToArray()).Take(steps - batches.Count));
        }
        int pad = TokenizerConfig.PadTokenId(tokenizer, modelDir);
        AtomicFile.Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, leaveOpen: true);
            writer.WriteLine(JsonSerializer.Serialize(new Dictionary<string, int> { ["pad_token_id"] = pad }));
            foreach (var examples in batches)
                writer.WriteLine(JsonSerializer.Serialize(examples.Select(e => new { input_ids = e.InputIds, labels = e.Labels })));
        });
        return batches.Sum(b => b.Sum(e => (long)e.Length));
    }

    /// <summary>The largest total_tokens in a trainer_log.jsonl (the trainer logs it at every logging step).</summary>
    private static long TotalTokens(string trainerLog)
    {
        long total = 0;
        foreach (string line in File.ReadLines(trainerLog))
        {
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.TryGetProperty("total_tokens", out var tokens)) total = Math.Max(total, tokens.GetInt64());
        }
        return total > 0 ? total : throw new InvalidDataException($"{trainerLog}: no line has total_tokens");
    }
}
