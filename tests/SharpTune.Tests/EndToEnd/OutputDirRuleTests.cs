using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// LLaMA-Factory's rule for an output_dir that is not empty, through the training workflow: resume from its latest
/// checkpoint, start afresh with overwrite_output_dir; `sharptune train` refuses a folder of weights without checkpoints.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class OutputDirRuleTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    [Fact]
    public void ASecondRunResumesFromTheLatestCheckpoint_AndOverwriteStartsAfresh()
    {
        string output = tiny.PathFor("rule");
        string config = tiny.WriteConfig("rule", output, ("max_steps", 2), ("save_steps", 1));
        TinyModelFixture.RunTraining(config);
        var first = TinyModelFixture.TrainerLog(output);
        Assert.Equal(["checkpoint-1", "checkpoint-2"], Checkpoints(output));

        // The same folder, two more steps: it continues from checkpoint-2 rather than starting over.
        var resumed = TinyModelFixture.RunTraining(config, "max_steps=4");
        Assert.Contains($"output_dir holds checkpoints: resuming from {Path.Combine(output, "checkpoint-2")} (set overwrite_output_dir: true to start afresh)", resumed.Notes);
        Assert.Equal([3, 4], resumed.Steps);
        Assert.Equal(["checkpoint-1", "checkpoint-2", "checkpoint-3", "checkpoint-4"], Checkpoints(output));
        // trainer_log.jsonl is appended to on resume: the first run's step lines stay and the resumed steps follow;
        // its closing line (step 2, no loss) goes, since the run now closes at step 4.
        var continued = TinyModelFixture.TrainerLog(output);
        Assert.Equal(first.Take(2), continued.Take(2));
        Assert.Equal([3, 4, 4], continued.Skip(2).Select(l => l.Step));
        Assert.Equal(2, continued.Skip(2).Count(l => l.Loss is not null));

        // The earlier run's checkpoints go once this run has saved its first: checkpoint-1 replaced, 2 to 4 removed.
        var afresh = TinyModelFixture.RunTraining(config, "overwrite_output_dir=true");
        Assert.Contains($"overwrite_output_dir: training afresh in {output}; its checkpoints are removed once this run has saved its first one", afresh.Notes);
        Assert.Equal([1, 2], afresh.Steps);
        Assert.Contains("removed the earlier run's checkpoint-2, checkpoint-3, checkpoint-4 now that this run has saved its own", afresh.Notes);
        Assert.Equal(["checkpoint-1", "checkpoint-2"], Checkpoints(output));
        Assert.Equal(first.Select(l => (l.Step, l.Loss)), TinyModelFixture.TrainerLog(output).Select(l => (l.Step, l.Loss)));
        using var state = TinyModelFixture.ReadJson(Path.Combine(output, "trainer_state.json"));
        Assert.Equal(2, state.RootElement.GetProperty("global_step").GetInt32());
    }

    /// <summary>
    /// LLaMA-Factory refuses only a folder that holds weights and no checkpoint (a finished run's output without
    /// checkpoints); other files do not stop a run (see CrashSafetyTests for a folder holding only a log).
    /// </summary>
    [Fact]
    public void AFolderOfWeightsWithoutCheckpointsIsRefusedWithOneLine()
    {
        string output = tiny.PathFor("occupied");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "notes.txt"), "not a training run");
        File.WriteAllText(Path.Combine(output, "adapter_model.safetensors"), "a finished run's adapter");

        var r = CliRunner.Run("train", tiny.WriteConfig("occupied", output));
        Assert.Equal(1, r.ExitCode);
        string[] lines = r.Stderr.TrimEnd().Split('\n');
        Assert.Equal($"error: output_dir {output} already holds model weights (adapter_model.safetensors) and no checkpoint to resume from; set overwrite_output_dir: true to train afresh into it, or choose another output_dir", lines[^1]);
        Assert.Single(lines, l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.Equal(["adapter_model.safetensors", "notes.txt"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    private static string[] Checkpoints(string output) =>
        Directory.GetDirectories(output).Select(d => Path.GetFileName(d)!).Order(StringComparer.Ordinal).ToArray();
}
