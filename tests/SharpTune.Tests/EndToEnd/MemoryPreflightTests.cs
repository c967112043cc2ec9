using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using SharpTune.Cli.Commands;
using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Tests.Cli;
using SharpTune.FineTuning.Memory;

namespace SharpTune.Tests.EndToEnd;

/// <summary>A fact that reads this machine's peak resident memory (VmHWM); skipped with the reason where there is none.</summary>
public sealed class PeakMemoryFactAttribute : FactAttribute
{
    public PeakMemoryFactAttribute()
    {
        if (SystemMemory.PeakResidentBytes() is null) Skip = "needs /proc/self/status (VmHWM) to measure a process's peak resident memory (Linux)";
    }
}

/// <summary>
/// The `init-model` "small" preset (95 MB of bf16 weights: big enough that the model and its buffers, not the
/// runtime, make up most of a run) with a dataset whose every example is cut at cutoff_len, so every batch is full.
/// </summary>
public sealed class SmallModelFixture : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("sharptune-memory-").FullName;
    public string ModelDir { get; }

    public SmallModelFixture()
    {
        ModelDir = Path.Combine(Root, "small");
        ModelInitializer.Create(ModelPreset.Get("small"), TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"), ModelDir, seed: 1);
        var records = Enumerable.Range(0, 8).Select(i => new
        {
            instruction = $"Tell story number {i}.",
            input = "",
            output = string.Join(' ', Enumerable.Range(0, 600).Select(j => $"word{(i + j) % 50}")),
        });
        File.WriteAllText(Path.Combine(Root, "long.json"), JsonSerializer.Serialize(records));
        File.WriteAllText(Path.Combine(Root, "dataset_info.json"), """{"long": {"file_name": "long.json"}}""");
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);

    /// <summary>A one-step run at batch 4 × cutoff_len 256 in a fresh output folder; <paramref name="keys"/> ("key: value") replace or add lines.</summary>
    public string WriteConfig(string name, params string[] keys)
    {
        var lines = new Dictionary<string, string>
        {
            ["model_name_or_path"] = JsonSerializer.Serialize(ModelDir),
            ["stage"] = "sft",
            ["do_train"] = "true",
            ["dataset"] = "long",
            ["dataset_dir"] = JsonSerializer.Serialize(Root),
            ["template"] = "qwen",
            ["cutoff_len"] = "256",
            ["per_device_train_batch_size"] = "4",
            ["max_steps"] = "1",
            ["output_dir"] = JsonSerializer.Serialize(Path.Combine(Root, "out-" + name)),
        };
        foreach (string key in keys)
        {
            var (k, v) = (key[..key.IndexOf(':')], key[(key.IndexOf(':') + 1)..].Trim());
            lines[k] = v;
        }
        string path = Path.Combine(Root, name + ".yaml");
        File.WriteAllLines(path, lines.Select(l => $"{l.Key}: {l.Value}"));
        return path;
    }
}

/// <summary>
/// The memory pre-flight end to end: estimates against the peak resident memory of real `sharptune train`
/// processes, `sharptune estimate`'s table, and a run that cannot fit stopping before it loads anything.
/// </summary>
[Collection(CliCollection.Name)]
public sealed partial class MemoryPreflightTests(SmallModelFixture small) : IClassFixture<SmallModelFixture>
{
    /// <summary>
    /// LoRA without gradient checkpointing (activations of every layer), full fine-tuning with 8-bit AdamW (fp32
    /// weights, gradients, optimizer state, the copies of two checkpoints) and QLoRA (quantised projections): each run's peak
    /// VmHWM, which `train` logs at the end next to the estimate, lies within 15% of the estimate.
    /// </summary>
    [PeakMemoryFact]
    public void Estimates_are_within_15_percent_of_measured_peaks()
    {
        (string Name, string[] Keys)[] runs =
        [
            ("lora", ["finetuning_type: lora", "lora_target: all", "disable_gradient_checkpointing: true"]),
            // Two steps with a checkpoint after each: the copies a checkpoint encodes must not pile up from one to the next.
            ("full", ["finetuning_type: full", "optim: adamw_8bit", "max_steps: 2", "save_steps: 1", "per_device_train_batch_size: 2"]),
            ("qlora", ["finetuning_type: lora", "lora_target: all", "quantization_bit: 4", "lora_dropout: 0.1"]),
        ];
        var failures = new List<string>();
        foreach (var (name, keys) in runs)
        {
            string config = small.WriteConfig(name, keys);
            var r = CliProcess.Run(["train", config]);
            Assert.True(r.ExitCode == 0, $"{name}: train exited with {r.ExitCode}:\n{r.Stderr}");
            var line = PeakLine().Match(r.Stderr);
            Assert.True(line.Success, $"{name}: no peak memory line in:\n{r.Stderr}");
            double measured = Megabytes(line.Groups[1].Value, line.Groups[2].Value);
            long estimate = MemoryEstimator.ForModelFolder(small.ModelDir, TrainingMemorySetup.From(SftConfig.Load(config, [], ConfigUse.Train))).TotalBytes;
            Assert.Contains($"(estimated {MemoryEstimator.FormatBytes(estimate)})", line.Value);
            if (Math.Abs(estimate / 1e6 - measured) > 0.15 * measured)
                failures.Add($"{name}: estimated {estimate / 1e6:F1} MB, measured {measured:F1} MB");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Estimate_prints_the_table_without_loading_the_model()
    {
        var r = CliRunner.Run("estimate", small.WriteConfig("estimate", "finetuning_type: lora"), "--cutoff_len", "128");
        Assert.True(r.ExitCode is 0 or EstimateCommand.DoesNotFitExitCode, r.Stderr);
        foreach (string row in new[] { "runtime, tokenizer, data", "weights, memory-mapped (BF16)", "gradients (fp32)", "optimizer state",
                     "activations, 4 × 128 tokens", "loss chunk, 256 rows × 151936 logits", "LoRA adapter caches", "total (estimated peak)", "available", "verdict: " })
            Assert.Contains(row, r.Stdout);
        Assert.False(Directory.Exists(Path.Combine(small.Root, "out-estimate")));
    }

    [Fact]
    public void A_run_that_cannot_fit_stops_before_loading_with_the_options_and_can_be_forced()
    {
        // 1024 sequences of 32768 tokens: terabytes of activations, on any machine.
        string config = small.WriteConfig("huge", "finetuning_type: full", "cutoff_len: 32768", "per_device_train_batch_size: 1024");
        var refused = CliRunner.Run("train", config);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("verdict: does not fit", refused.Stderr);
        Assert.Contains("options that fit:", refused.Stderr);
        Assert.Matches(@"per_device_train_batch_size=\d+ gradient_accumulation_steps=\d+: ", refused.Stderr);
        Assert.Contains("pass --skip-memory-check to train anyway", refused.Stderr);
        Assert.DoesNotContain("trainable params", refused.Stderr);
        Assert.False(Directory.Exists(Path.Combine(small.Root, "out-huge")));

        var estimate = CliRunner.Run("estimate", config);
        Assert.Equal(EstimateCommand.DoesNotFitExitCode, estimate.ExitCode);
        Assert.Contains("verdict: does not fit", estimate.Stdout);

        // The forced run's real batch is two short identity examples, far below the estimate's 1024 × 32768 tokens.
        var forced = CliRunner.Run("train", small.WriteConfig("forced", "finetuning_type: lora", "cutoff_len: 32768", "per_device_train_batch_size: 1024",
            "dataset: identity", $"dataset_dir: {JsonSerializer.Serialize(TinyModelFixture.BundledData)}", "max_samples: 2"), "--skip-memory-check");
        Assert.True(forced.ExitCode == 0, forced.Stderr);
        Assert.Contains("note: --skip-memory-check: training although the estimated peak", forced.Stderr);
    }

    private static double Megabytes(string value, string unit) =>
        double.Parse(value, CultureInfo.InvariantCulture) * (unit == "GB" ? 1000 : 1);

    [GeneratedRegex(@"peak resident memory: ([\d.]+) (MB|GB) \(estimated [^)]*\)")]
    private static partial Regex PeakLine();
}
