using System.Globalization;
using System.Text.Json;
using SharpTune.Hparams;
using SharpTune.FineTuning.Memory;

namespace SharpTune.Bench;

/// <summary>
/// The memory estimate against measured peaks: one-step `sharptune train` runs (the CLI built next to this bench, in
/// the same configuration) of LoRA with and without gradient checkpointing, full fine-tuning with 8-bit AdamW and
/// QLoRA on a generated --preset model (default small), --batch (4) × --seq (256) tokens of examples that all reach
/// cutoff_len; each child's peak resident memory (VmHWM, which train logs at its end) beside the estimate
/// `sharptune estimate` prints for the same config.
/// </summary>
public sealed class MemoryWorkload : IWorkload
{
    public string Name => "memory";

    public string Description => "the memory estimate (sharptune estimate) against the peak RSS of real `sharptune train` runs: LoRA, LoRA with checkpointing, full, QLoRA";

    public int DefaultSeq => 256;

    private static readonly (string Label, string[] Keys)[] s_runs =
    [
        ("LoRA r8, no checkpointing", ["finetuning_type: lora", "disable_gradient_checkpointing: true"]),
        ("LoRA r8, checkpointing", ["finetuning_type: lora"]),
        ("full, adamw_8bit, checkpointing", ["finetuning_type: full", "optim: adamw_8bit"]),
        ("QLoRA 4-bit r8, dropout 0.1", ["finetuning_type: lora", "quantization_bit: 4", "lora_dropout: 0.1"]),
    ];

    public void Run(BenchContext context)
    {
        string preset = context.Option("preset", "small");
        string model = BenchModels.Ensure(preset, context.Json);
        int batch = int.Parse(context.Option("batch", "4"), CultureInfo.InvariantCulture);
        string work = Path.Combine(BenchModels.RepoRoot, "bench", ".models", "memory-runs");
        Directory.CreateDirectory(work);
        // Every example is longer than any --seq here, so every batch is batch × cutoff_len, the estimate's size.
        var records = Enumerable.Range(0, 2 * batch).Select(i => new
        {
            instruction = $"Tell story number {i}.",
            input = "",
            output = string.Join(' ', Enumerable.Range(0, 4 * context.Seq).Select(j => $"word{(i + j) % 50}")),
        });
        File.WriteAllText(Path.Combine(work, "long.json"), JsonSerializer.Serialize(records));
        File.WriteAllText(Path.Combine(work, "dataset_info.json"), """{"long": {"file_name": "long.json"}}""");

        var table = new List<string[]> { new[] { "run", "estimated", "measured peak RSS", "estimate − measured" } };
        foreach (var (label, keys) in s_runs)
        {
            string name = ReportWorkload.Slug(label);
            string config = Path.Combine(work, name + ".yaml");
            File.WriteAllLines(config,
            [
                $"model_name_or_path: {JsonSerializer.Serialize(model)}", "stage: sft", "do_train: true", "dataset: long",
                $"dataset_dir: {JsonSerializer.Serialize(work)}", "template: qwen", $"cutoff_len: {context.Seq}",
                $"per_device_train_batch_size: {batch}", "max_steps: 1", "overwrite_output_dir: true",
                $"output_dir: {JsonSerializer.Serialize(Path.Combine(work, "out-" + name))}", .. keys,
            ]);
            long estimate = MemoryEstimator.ForModelFolder(model, TrainingMemorySetup.From(SftConfig.Load(config, [], ConfigUse.Train))).TotalBytes;
            double measured = BenchModels.RunSharpTuneTrain(config).PeakMegabytes;
            double difference = estimate / 1e6 - measured;
            context.Report($"memory.{name}.estimate", estimate / 1e6, "MB");
            context.Report($"memory.{name}.measured", measured, "MB");
            table.Add([label, MemoryEstimator.FormatBytes(estimate), $"{measured:F1} MB", $"{difference:+0.0;-0.0} MB ({100 * difference / measured:+0;-0}%)"]);
        }
        if (context.Json) return;
        Console.WriteLine();
        Console.WriteLine($"{preset}, batch {batch} × cutoff_len {context.Seq}, one step:");
        int[] widths = Enumerable.Range(0, table[0].Length).Select(i => table.Max(r => r[i].Length)).ToArray();
        foreach (var (row, index) in table.Select((r, i) => (r, i)))
        {
            Console.WriteLine("| " + string.Join(" | ", row.Select((cell, i) => cell.PadRight(widths[i]))) + " |");
            if (index == 0) Console.WriteLine("|" + string.Join("|", widths.Select(w => new string('-', w + 2))) + "|");
        }
    }
}
