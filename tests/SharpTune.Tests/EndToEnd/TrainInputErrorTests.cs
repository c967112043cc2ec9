using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>Bad input to `sharptune train` stops with one precise line, or with --lenient is skipped and reported.</summary>
[Collection(CliCollection.Name)]
public sealed class TrainInputErrorTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    /// <summary>A dataset folder whose 'broken' dataset has four alpaca records, the third without 'output'.</summary>
    private string BrokenDataset()
    {
        string dir = tiny.PathFor("broken-data");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "dataset_info.json"), """{"broken": {"file_name": "broken.json"}}""");
        File.WriteAllText(Path.Combine(dir, "broken.json"), """
            [
              {"instruction": "Who are you?", "input": "", "output": "I am TuneBot."},
              {"instruction": "What is your name?", "input": "", "output": "TuneBot."},
              {"instruction": "Who made you?", "input": ""},
              {"instruction": "hi", "input": "", "output": "Hello! I am TuneBot."}
            ]
            """);
        return dir;
    }

    private string BrokenConfig(string output) =>
        tiny.WriteConfig("broken", output, ("dataset", "broken"), ("dataset_dir", BrokenDataset()), ("max_steps", 1), ("save_steps", 1));

    [Fact]
    public void ARecordWithoutOutputStopsWithOneLineNamingFileRecordAndField()
    {
        string output = tiny.PathFor("broken-out");
        var r = CliRunner.Run("train", BrokenConfig(output));
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("error: broken.json: record 2: 'output' is missing", r.Stderr.TrimEnd().Split('\n')[^1]);
        Assert.Single(r.Stderr.Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void LenientSkipsTheRecordReportsItAndTrains()
    {
        string output = tiny.PathFor("lenient-out");
        var r = CliRunner.Run("train", BrokenConfig(output), "--lenient");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("broken.json: record 2: 'output' is missing", r.Stderr);
        Assert.Contains("[sharptune] train: 3 examples, eval: 0 examples", r.Stderr);
        Assert.True(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
    }

    [Fact]
    public void AnUnknownKeySuggestsTheNearestOne()
    {
        string config = tiny.WriteConfig("typo", tiny.PathFor("typo-out"), ("learning_rate", null), ("learnig_rate", 1e-4));
        var r = CliRunner.Run("train", config);
        Assert.Equal(1, r.ExitCode);
        int line = Array.IndexOf(File.ReadAllLines(config), "learnig_rate: 0.0001") + 1;
        Assert.Equal($"error: unknown key 'learnig_rate' (did you mean 'learning_rate'?) (line {line} of typo.yaml)", r.Stderr.TrimEnd());
    }
}
