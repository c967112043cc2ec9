using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// PEFT's modules_to_save (additional_target) on a model with tied embeddings: the wrapped module trains a copy and
/// the other keeps the original weight. The reference is the same model untied (lm_head.weight written out as a
/// copy of the embedding, tie_word_embeddings false), where embed_tokens and lm_head are separate tensors from the
/// start: the tied run must train, serve and export exactly what the untied run does.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class ModulesToSaveTiedTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private string UntiedTwin()
    {
        string twin = tiny.PathFor("untied-twin");
        if (Directory.Exists(twin)) return twin;
        string building = twin + ".building";
        Directory.CreateDirectory(building);
        foreach (string file in Directory.GetFiles(tiny.ModelDir))
            if (Path.GetFileName(file) is not ("model.safetensors" or "config.json"))
                File.Copy(file, Path.Combine(building, Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(tiny.ModelDir, "config.json")))!;
        Assert.True(config["tie_word_embeddings"]!.GetValue<bool>(), "the tiny preset must be tied for this test");
        config["tie_word_embeddings"] = false;
        File.WriteAllText(Path.Combine(building, "config.json"), config.ToJsonString());
        using (var weights = SafetensorsFile.Open(Path.Combine(tiny.ModelDir, "model.safetensors")))
        {
            var tensors = weights.Tensors.Select(t => (t.Name, t.DType, t.Shape, (ReadOnlyMemory<byte>)weights.Bytes(t.Name).ToArray())).ToList();
            var embedding = tensors.Single(t => t.Name == "model.embed_tokens.weight");
            tensors.Add(("lm_head.weight", embedding.DType, embedding.Shape, embedding.Item4));
            SafetensorsWriter.Write(Path.Combine(building, "model.safetensors"), tensors, SafetensorsWriter.PyTorchMetadata);
        }
        Directory.Move(building, twin);
        return twin;
    }

    private string Train(string name, string modelDir, string target)
    {
        string output = tiny.PathFor(name);
        TinyModelFixture.Train(tiny.WriteConfig(name, output, ("model_name_or_path", modelDir), ("additional_target", target),
            ("lora_target", "q_proj,v_proj"), ("max_steps", 3), ("save_steps", 10), ("learning_rate", 5.0e-2)));
        return output;
    }

    [Theory]
    [InlineData("embed_tokens", "base_model.model.model.embed_tokens.weight")]
    [InlineData("lm_head", "base_model.model.lm_head.weight")]
    public void TiedRunTrainsServesAndExportsWhatTheUntiedModelDoes(string target, string savedKey)
    {
        string tied = Train($"tied-{target}", tiny.ModelDir, target);
        string untied = Train($"untied-{target}", UntiedTwin(), target);

        // Training: the same losses and the same adapter, byte for byte (the copy moved, the lora pairs too).
        Assert.Equal(TinyModelFixture.TrainerLog(untied), TinyModelFixture.TrainerLog(tied));
        var tiedAdapter = TinyModelFixture.TensorBytes(Path.Combine(tied, "adapter_model.safetensors"));
        var untiedAdapter = TinyModelFixture.TensorBytes(Path.Combine(untied, "adapter_model.safetensors"));
        Assert.Equal(untiedAdapter.Keys.Order(StringComparer.Ordinal), tiedAdapter.Keys.Order(StringComparer.Ordinal));
        Assert.Contains(savedKey, tiedAdapter.Keys);
        foreach (var (key, bytes) in untiedAdapter) Assert.True(bytes.AsSpan().SequenceEqual(tiedAdapter[key]), key);
        using (var weights = SafetensorsFile.Open(Path.Combine(tiny.ModelDir, "model.safetensors")))
        {
            var original = weights.ReadFloat32("model.embed_tokens.weight");
            using var adapter = SafetensorsFile.Open(Path.Combine(tied, "adapter_model.safetensors"));
            Assert.False(original.AsSpan().SequenceEqual(adapter.ReadFloat32(savedKey)), "three steps must have moved the trained copy");
        }

        // Serving: the adapter applied unmerged gives the untied model's greedy reply.
        Assert.Equal(TinyModelFixture.GreedyIds(UntiedTwin(), "Who are you?", untied), TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?", tied));

        // Export: an untied folder whose tensors are the untied model's merge, byte for byte.
        string tiedExport = Export(tiny.ModelDir, tied, $"export-tied-{target}");
        string untiedExport = Export(UntiedTwin(), untied, $"export-untied-{target}");
        using (var config = TinyModelFixture.ReadJson(Path.Combine(tiedExport, "config.json")))
            Assert.False(config.RootElement.GetProperty("tie_word_embeddings").GetBoolean());
        var exported = TinyModelFixture.TensorBytes(Path.Combine(tiedExport, "model.safetensors"));
        var reference = TinyModelFixture.TensorBytes(Path.Combine(untiedExport, "model.safetensors"));
        Assert.Equal(reference.Keys.Order(StringComparer.Ordinal), exported.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, bytes) in reference) Assert.True(bytes.AsSpan().SequenceEqual(exported[key]), key);
        Assert.Equal(TinyModelFixture.GreedyIds(untiedExport, "Who are you?"), TinyModelFixture.GreedyIds(tiedExport, "Who are you?"));
    }

    private string Export(string baseDir, string adapter, string name)
    {
        string exportDir = tiny.PathFor(name);
        string config = Path.Combine(tiny.Root, name + ".yaml");
        File.WriteAllText(config, $"""
            model_name_or_path: {JsonSerializer.Serialize(baseDir)}
            adapter_name_or_path: {JsonSerializer.Serialize(adapter)}
            template: qwen
            finetuning_type: lora
            export_dir: {JsonSerializer.Serialize(exportDir)}
            """);
        var r = CliRunner.Run("export", config);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return exportDir;
    }
}
