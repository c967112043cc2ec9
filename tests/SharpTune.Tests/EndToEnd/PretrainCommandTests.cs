using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>`sharptune train` with stage pt: continued pretraining with LoRA on a plain-text corpus.</summary>
[Collection(CliCollection.Name)]
public sealed class PretrainCommandTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    [Fact]
    public void StagePtTrainsOnATextCorpusAndEvaluatesItsPerplexity()
    {
        string data = tiny.PathFor("corpus");
        Directory.CreateDirectory(data);
        File.WriteAllText(Path.Combine(data, "dataset_info.json"), """{"corpus": {"file_name": "corpus.txt", "columns": {"prompt": "text"}}}""");
        var lines = Enumerable.Range(0, 40).Select(i => $"Paragraph {i}: the tiny model reads plain text, and every token of it is a target.");
        File.WriteAllLines(Path.Combine(data, "corpus.txt"), lines);
        string output = tiny.PathFor("pt");

        var r = TinyModelFixture.Train(tiny.WriteConfig("pt", output, ("stage", "pt"), ("dataset", "corpus"), ("dataset_dir", data),
            ("cutoff_len", 32), ("max_samples", null), ("val_size", 2), ("do_eval", true), ("max_steps", 4), ("save_steps", 4)));

        Assert.Contains("packed", r.Stderr);
        Assert.True(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
        var log = TinyModelFixture.TrainerLog(output);
        Assert.All(log.Where(l => l.Loss is not null), l => Assert.True(l.Loss > 0 && double.IsFinite(l.Loss!.Value)));
        using var results = TinyModelFixture.ReadJson(Path.Combine(output, "all_results.json"));
        double evalLoss = results.RootElement.GetProperty("eval_loss").GetDouble();
        Assert.Equal(Math.Exp(evalLoss), results.RootElement.GetProperty("perplexity").GetDouble(), 1e-9);
    }
}
