using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>`sharptune train` with finetuning_type full and freeze: the output folder is a model `generate` runs.</summary>
[Collection(CliCollection.Name)]
public sealed class WeightsTrainingCommandTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    [Fact]
    public void FreezeTrainsOnlyTheLastLayer()
    {
        string output = Train("freeze", ("freeze_trainable_layers", 1));
        var changed = ChangedTensors(output);
        var expected = BaseTensors().Keys.Where(n => n.StartsWith("model.layers.1.", StringComparison.Ordinal)).Order(StringComparer.Ordinal);
        Assert.Equal(expected, changed.Order(StringComparer.Ordinal));
        Assert.NotEmpty(expected);
        Assert.NotEqual(TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?"), TinyModelFixture.GreedyIds(output, "Who are you?"));
    }

    [Fact]
    public void FullTrainsEveryTensorIncludingTheEmbedding()
    {
        string output = Train("full");
        var changed = ChangedTensors(output);
        Assert.Contains("model.embed_tokens.weight", changed);
        Assert.Equal(BaseTensors().Keys.Order(StringComparer.Ordinal), changed.Order(StringComparer.Ordinal));
        Assert.NotEqual(TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?"), TinyModelFixture.GreedyIds(output, "Who are you?"));
    }

    /// <summary>Two optimizer steps of the method; checks the folder is a complete model that `generate` loads and runs.</summary>
    private string Train(string method, params (string Key, object? Value)[] keys)
    {
        string output = tiny.PathFor(method);
        TinyModelFixture.Train(tiny.WriteConfig(method, output, [("finetuning_type", method), ("max_steps", 2), ("save_steps", 2), ("lora_rank", null), ("lora_target", null), .. keys]));
        foreach (string file in new[] { "model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(output, file)), file);
        Assert.False(File.Exists(Path.Combine(output, "adapter_config.json")));
        foreach (string file in new[] { "config.json", "generation_config.json" })
            Assert.Equal(File.ReadAllText(Path.Combine(tiny.ModelDir, file)), File.ReadAllText(Path.Combine(output, file)));
        Assert.False(string.IsNullOrWhiteSpace(TinyModelFixture.Generate(output, "Who are you?")));
        return output;
    }

    private Dictionary<string, byte[]> BaseTensors() => TinyModelFixture.TensorBytes(Path.Combine(tiny.ModelDir, "model.safetensors"));

    /// <summary>The names of the trained model's tensors whose stored bytes differ from the base's (same names and dtype required).</summary>
    private List<string> ChangedTensors(string output)
    {
        var before = BaseTensors();
        var after = TinyModelFixture.TensorBytes(Path.Combine(output, "model.safetensors"));
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), after.Keys.Order(StringComparer.Ordinal));
        return before.Keys.Where(name => !before[name].AsSpan().SequenceEqual(after[name])).ToList();
    }
}
