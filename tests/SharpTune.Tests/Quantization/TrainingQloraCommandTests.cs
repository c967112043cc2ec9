using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Chat;
using SharpTune.Hparams;
using SharpTune.Quantization;
using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.Workflows;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Tests.Quantization;

/// <summary>
/// QLoRA on the tiny model: the training workflow with quantization_bit, exact resume, the adapter in `generate` on
/// the quantised and on the unquantised base, the export workflow merging into the unquantised weights.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class TrainingQloraCommandTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private string QloraConfig(string name, string outputDir, params (string Key, object? Value)[] keys) =>
        tiny.WriteConfig(name, outputDir, [("quantization_bit", 4), ("lora_dropout", 0.1), .. keys]);

    /// <summary>A 3-step QLoRA adapter, trained once for the tests of this class that only use it (they share the fixture and run serially).</summary>
    private string SharedAdapter()
    {
        string adapter = tiny.PathFor("qlora-shared");
        if (!File.Exists(Path.Combine(adapter, "adapter_model.safetensors")))
            TinyModelFixture.Train(QloraConfig("qlora-shared", adapter, ("max_steps", 3)));
        return adapter;
    }

    private static List<(int Step, double? Loss)> Losses(string outputDir) => TinyModelFixture.TrainerLog(outputDir).Where(l => l.Loss is not null).ToList();

    [Fact]
    public void Qlora_run_follows_the_lora_run_and_resumes_exactly()
    {
        string lora = tiny.PathFor("plain-lora");
        TinyModelFixture.Train(tiny.WriteConfig("plain-lora", lora, ("lora_dropout", 0.1)));
        string whole = tiny.PathFor("qlora-whole");
        var r = TinyModelFixture.RunTraining(QloraConfig("qlora-whole", whole));
        Assert.Contains("base projections quantized on load: 4-bit NF4 + double quantization", r.Notes);

        var qloraLosses = Losses(whole);
        var loraLosses = Losses(lora);
        Assert.Equal(6, qloraLosses.Count);
        for (int i = 0; i < loraLosses.Count; i++)
            Assert.True(Math.Abs(qloraLosses[i].Loss!.Value - loraLosses[i].Loss!.Value) <= 0.05 * loraLosses[i].Loss!.Value,
                $"step {i + 1}: QLoRA {qloraLosses[i].Loss} vs LoRA {loraLosses[i].Loss}");
        Assert.NotEqual(loraLosses, qloraLosses);

        string continued = tiny.PathFor("qlora-continued");
        var resumed = TinyModelFixture.RunTraining(QloraConfig("qlora-continued", continued), $"resume_from_checkpoint={Path.Combine(whole, "checkpoint-3")}");
        Assert.Contains($"resumed from {Path.Combine(whole, "checkpoint-3")} at step 3/6", resumed.Notes);
        Assert.Equal(qloraLosses.Where(l => l.Step > 3), Losses(continued));
        Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, "adapter_model.safetensors")),
            TinyModelFixture.TensorBytes(Path.Combine(continued, "adapter_model.safetensors")));
    }

    [Fact]
    public void The_adapter_generates_on_the_quantized_and_on_the_unquantized_base()
    {
        string adapter = SharedAdapter();

        var r = CliRunner.Run("generate", "--model", tiny.ModelDir, "--adapter", adapter, "--quantization-bit", "4", "--prompt", "Who are you?",
            "--greedy", "--max-new-tokens", "12");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("projections quantized on load: 4-bit NF4 + double quantization", r.Stderr);
        using (var session = ChatSession.Open(tiny.ModelDir, "auto", null, [adapter], new QuantizationOptions(4)))
        {
            var options = session.DefaultOptions() with { DoSample = false, MaxNewTokens = 12 };
            Assert.Equal(session.Reply("Who are you?", options).Text + Environment.NewLine, r.Stdout);
        }
        Assert.NotEmpty(TinyModelFixture.Generate(tiny.ModelDir, "Who are you?", adapter).Trim());

        var fp4 = CliRunner.Run("generate", "--model", tiny.ModelDir, "--adapter", adapter, "--quantization-bit", "4", "--quantization-type", "fp4",
            "--no-double-quantization", "--prompt", "Hi", "--greedy", "--max-new-tokens", "2");
        Assert.True(fp4.ExitCode == 0, fp4.Stderr);
        Assert.Contains("projections quantized on load: 4-bit FP4", fp4.Stderr);
        Assert.DoesNotContain("double quantization", fp4.Stderr);

        var bad = CliRunner.Run("generate", "--model", tiny.ModelDir, "--quantization-bit", "3", "--prompt", "Hi");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("--quantization-bit must be 4 or 8, not 3", bad.Stderr);
    }

    [Fact]
    public void Export_merges_into_the_unquantized_weights_and_says_so()
    {
        string adapter = SharedAdapter();
        string Export(string name, bool quantized)
        {
            string exportDir = tiny.PathFor(name);
            string config = Path.Combine(tiny.Root, name + ".yaml");
            File.WriteAllText(config, $"""
                model_name_or_path: {JsonSerializer.Serialize(tiny.ModelDir)}
                adapter_name_or_path: {JsonSerializer.Serialize(adapter)}
                template: qwen
                finetuning_type: lora
                {(quantized ? "quantization_bit: 4" : "")}
                export_dir: {JsonSerializer.Serialize(exportDir)}
                """);
            var recorder = new RecordingObserver();
            ExportWorkflow.Run(SftConfig.Load(config, [], ConfigUse.Export), CancellationToken.None, recorder);
            Assert.Equal(quantized, recorder.Events.OfType<RunNote>().Any(n => n.Text.Contains("merged into the unquantized weights read from", StringComparison.Ordinal)));
            return exportDir;
        }
        string fromQuantizedConfig = Export("qlora-merged", quantized: true);
        string plain = Export("qlora-merged-plain", quantized: false);
        Assert.Equal(TinyModelFixture.TensorBytes(plain), TinyModelFixture.TensorBytes(fromQuantizedConfig));
        Assert.NotEqual(TinyModelFixture.TensorBytes(tiny.ModelDir)["model.layers.0.self_attn.q_proj.weight"],
            TinyModelFixture.TensorBytes(fromQuantizedConfig)["model.layers.0.self_attn.q_proj.weight"]);
        Assert.False(JsonNode.Parse(File.ReadAllText(Path.Combine(fromQuantizedConfig, "config.json")))!.AsObject().ContainsKey("quantization_config"));
    }

    [Theory]
    [InlineData("full")]
    [InlineData("freeze")]
    public void Full_and_freeze_training_refuse_quantization(string method)
    {
        var r = CliRunner.Run("train", QloraConfig("qlora-" + method, tiny.PathFor("qlora-" + method), ("finetuning_type", method)));
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains($"quantized weights cannot be trained, so finetuning_type {method} cannot use quantization; use finetuning_type: lora (QLoRA)", r.Stderr);
    }
}
