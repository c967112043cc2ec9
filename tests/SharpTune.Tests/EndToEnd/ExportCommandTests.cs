using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>`sharptune export` of a trained adapter with LLaMA-Factory's merge keys: the merged folder is the adapted model.</summary>
[Collection(CliCollection.Name)]
public sealed class ExportCommandTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private const int ImEnd = 151645;
    private const int EndOfText = 151643;

    [Fact]
    public void MergedExportGeneratesWhatTheBaseWithTheAdapterGenerates()
    {
        // A base whose generation_config.json names only <|endoftext|>, as Qwen2.5 base models ship: the export must
        // add the qwen template's <|im_end|> so the merged model stops where the chat template ends a turn.
        string baseDir = tiny.PathFor("base-endoftext");
        Directory.CreateDirectory(baseDir);
        foreach (string file in Directory.GetFiles(tiny.ModelDir)) File.Copy(file, Path.Combine(baseDir, Path.GetFileName(file)));
        var generation = JsonNode.Parse(File.ReadAllText(Path.Combine(baseDir, "generation_config.json")))!.AsObject();
        generation["eos_token_id"] = EndOfText;
        File.WriteAllText(Path.Combine(baseDir, "generation_config.json"), generation.ToJsonString());

        string adapter = tiny.PathFor("export-adapter");
        TinyModelFixture.Train(tiny.WriteConfig("export-train", adapter, ("model_name_or_path", baseDir), ("max_steps", 4), ("save_steps", 4)));

        string exportDir = tiny.PathFor("merged");
        string config = Path.Combine(tiny.Root, "export.yaml");
        File.WriteAllText(config, $"""
            ### model
            model_name_or_path: {JsonSerializer.Serialize(baseDir)}
            adapter_name_or_path: {JsonSerializer.Serialize(adapter)}
            template: qwen
            finetuning_type: lora

            ### export
            export_dir: {JsonSerializer.Serialize(exportDir)}
            export_size: 5
            export_device: cpu
            export_legacy_format: false
            """);
        var r = CliRunner.Run("export", config);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains($"exported the base merged with {adapter} to {exportDir}", r.Stderr);
        Assert.Contains("model.safetensors", r.Stdout.Split('\n').Select(l => l.Trim()));

        Assert.True(File.Exists(Path.Combine(exportDir, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(exportDir, "model.safetensors.index.json")));
        using (var exported = TinyModelFixture.ReadJson(Path.Combine(exportDir, "generation_config.json")))
            Assert.Equal([ImEnd, EndOfText], exported.RootElement.GetProperty("eos_token_id").EnumerateArray().Select(e => e.GetInt32()));

        // The adapter touches every projection, so the merge must have changed those weights and nothing else.
        var before = TinyModelFixture.TensorBytes(Path.Combine(baseDir, "model.safetensors"));
        var after = TinyModelFixture.TensorBytes(Path.Combine(exportDir, "model.safetensors"));
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), after.Keys.Order(StringComparer.Ordinal));
        var changed = before.Keys.Where(n => !before[n].AsSpan().SequenceEqual(after[n])).Order(StringComparer.Ordinal);
        Assert.Equal(before.Keys.Where(n => n.EndsWith("_proj.weight", StringComparison.Ordinal)).Order(StringComparer.Ordinal), changed);

        int[] unmerged = TinyModelFixture.GreedyIds(baseDir, "Who are you?", adapter);
        Assert.Equal(unmerged, TinyModelFixture.GreedyIds(exportDir, "Who are you?"));
        Assert.NotEqual(TinyModelFixture.GreedyIds(baseDir, "Who are you?"), unmerged);
        Assert.Equal(TinyModelFixture.Generate(baseDir, "你是谁？", adapter), TinyModelFixture.Generate(exportDir, "你是谁？"));
    }
}
