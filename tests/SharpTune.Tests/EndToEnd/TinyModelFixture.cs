using System.Globalization;
using System.Text;
using System.Text.Json;
using SharpTune.Chat;
using SharpTune.Engine;
using SharpTune.Hparams;
using SharpTune.Inference;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Workflows;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// The `init-model --preset tiny` model (random Qwen2 weights, the real Qwen2.5 tokenizer), generated once per test
/// class into a temporary folder, with helpers to write configs and read what `sharptune train` leaves behind.
/// </summary>
public class TinyModelFixture : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("sharptune-e2e-").FullName;
    public string ModelDir { get; }

    /// <summary>The repository's bundled data folder (identity.json and its dataset_info.json).</summary>
    public static string BundledData => Path.Combine(TestPaths.RepoRoot, "data");

    public TinyModelFixture() : this("tiny", TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"), DType.BF16)
    {
    }

    /// <summary>Another preset's model, in <paramref name="dtype"/>, with the tokenizer of <paramref name="tokenizerDir"/>.</summary>
    protected TinyModelFixture(string preset, string tokenizerDir, DType dtype)
    {
        ModelDir = Path.Combine(Root, preset);
        ModelInitializer.Create(ModelPreset.Get(preset), tokenizerDir, ModelDir, seed: 1, dtype);
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);

    /// <summary>A path under the fixture's folder; each test asks for names of its own, so nothing is there yet.</summary>
    public string PathFor(string name) => Path.Combine(Root, name);

    /// <summary>
    /// Writes a LoRA SFT config on the tiny model and the bundled identity data: small enough for a handful of steps
    /// in a second or two. <paramref name="keys"/> replace or add lines (a null value removes the key).
    /// </summary>
    public string WriteConfig(string name, string outputDir, params (string Key, object? Value)[] keys)
    {
        var values = new List<(string Key, object? Value)>
        {
            ("model_name_or_path", ModelDir),
            ("stage", "sft"),
            ("do_train", true),
            ("finetuning_type", "lora"),
            ("lora_rank", 4),
            ("lora_target", "all"),
            ("dataset", "identity"),
            ("dataset_dir", BundledData),
            ("template", "qwen"),
            ("cutoff_len", 64),
            ("max_samples", 16),
            ("output_dir", outputDir),
            ("logging_steps", 1),
            ("save_steps", 3),
            ("per_device_train_batch_size", 4),
            ("gradient_accumulation_steps", 1),
            ("learning_rate", 1.0e-2),
            ("max_steps", 6),
            ("lr_scheduler_type", "cosine"),
            ("seed", 42),
        };
        foreach (var (key, value) in keys)
        {
            values.RemoveAll(v => v.Key == key);
            if (value is not null) values.Add((key, value));
        }
        var yaml = new StringBuilder();
        foreach (var (key, value) in values)
            yaml.Append(key).Append(": ").AppendLine(value switch
            {
                bool b => b ? "true" : "false",
                string s => JsonSerializer.Serialize(s),
                IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
                _ => throw new ArgumentException($"{key}: no YAML form for a {value!.GetType().Name}"),
            });
        string path = Path.Combine(Root, name + ".yaml");
        File.WriteAllText(path, yaml.ToString());
        return path;
    }

    public static CliResult Train(params string[] args)
    {
        var r = CliRunner.Run(["train", .. args]);
        Assert.True(r.ExitCode == 0, $"train exited with {r.ExitCode}:\n{r.Stderr}");
        return r;
    }

    /// <summary>What `sharptune train CONFIG overrides...` runs, as the library workflow, watched by a recorder.</summary>
    public static WorkflowRun RunTraining(string config, params string[] overrides)
    {
        var recorder = new RecordingObserver();
        var result = TrainingWorkflow.Run(new TrainingRequest(SftConfig.Load(config, overrides, ConfigUse.Train)), CancellationToken.None, recorder);
        return new WorkflowRun(result, recorder.Events);
    }

    /// <summary>The greedy reply's token ids for a prompt, through the same session `sharptune generate` opens.</summary>
    public static int[] GreedyIds(string modelDir, string prompt, params string[] adapters)
    {
        using var session = ChatSession.Open(modelDir, "auto", null, adapters);
        var options = session.DefaultOptions() with { DoSample = false, MaxNewTokens = 12 };
        return session.Reply(prompt, options).Result.NewIds;
    }

    /// <summary>`sharptune generate` with greedy decoding; returns stdout (the reply).</summary>
    public static string Generate(string modelDir, string prompt, params string[] adapters)
    {
        var args = new List<string> { "generate", "--model", modelDir, "--prompt", prompt, "--greedy", "--max-new-tokens", "12" };
        foreach (string adapter in adapters) args.AddRange(["--adapter", adapter]);
        var r = CliRunner.Run([.. args]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return r.Stdout;
    }

    /// <summary>Every tensor of a safetensors file or model folder as raw bytes, by name.</summary>
    public static Dictionary<string, byte[]> TensorBytes(string fileOrFolder)
    {
        if (File.Exists(fileOrFolder))
        {
            using var file = SafetensorsFile.Open(fileOrFolder);
            return file.Tensors.ToDictionary(t => t.Name, t => file.Bytes(t.Name).ToArray(), StringComparer.Ordinal);
        }
        using var checkpoint = SafetensorsCheckpoint.OpenDirectory(fileOrFolder);
        return checkpoint.Names.ToDictionary(n => n, n => checkpoint.Bytes(n).ToArray(), StringComparer.Ordinal);
    }

    /// <summary>
    /// trainer_log.jsonl as (current_steps, loss) per line; the last line, logged with the final metrics, has no loss
    /// (LLaMA-Factory's LogCallback still writes it: Trainer logs train_runtime before on_train_end).
    /// </summary>
    public static List<(int Step, double? Loss)> TrainerLog(string outputDir) =>
        File.ReadAllLines(Path.Combine(outputDir, "trainer_log.jsonl")).Select(line =>
        {
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            return (root.GetProperty("current_steps").GetInt32(), root.TryGetProperty("loss", out var loss) ? loss.GetDouble() : (double?)null);
        }).ToList();

    public static JsonDocument ReadJson(string path) => JsonDocument.Parse(File.ReadAllText(path));
}

/// <summary>A training workflow's result and the events it reported, in order.</summary>
public sealed record WorkflowRun(WorkflowResult Result, IReadOnlyList<RunEvent> Events)
{
    /// <summary>The lines the console shows as "[sharptune] ..." or between steps: run notes and trainer notes, in order.</summary>
    public IReadOnlyList<string> Notes => Events.Select(e => e switch { RunNote n => n.Text, TrainerNote n => n.Text, _ => null }).OfType<string>().ToList();

    /// <summary>The optimizer steps this run completed, in order.</summary>
    public IReadOnlyList<int> Steps => Events.OfType<StepCompleted>().Select(s => s.Progress.Step).ToList();
}
