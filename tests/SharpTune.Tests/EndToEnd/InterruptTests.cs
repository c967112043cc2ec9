using System.Text.Json;

namespace SharpTune.Tests.EndToEnd;

/// <summary>A fact that runs the CLI as a child process and needs POSIX signals (SIGINT, SIGKILL); skipped on Windows.</summary>
public sealed class PosixFactAttribute : FactAttribute
{
    public PosixFactAttribute()
    {
        if (OperatingSystem.IsWindows()) Skip = "sends SIGINT with kill(1) or lets the CLI SIGKILL itself";
    }
}

/// <summary>
/// Ctrl+C on a real `sharptune train` process: the step in progress finishes, a checkpoint is saved, the process exits
/// 130, and the resume command it prints (config, overrides and all) finishes the same run.
/// </summary>
[Collection(Cli.CliCollection.Name)]
public sealed class InterruptTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private const int MaxSteps = 20;

    [PosixFact]
    public void SigintSavesACheckpointAndThePrintedCommandResumesTheRun()
    {
        // The file names another output_dir: only the command-line override sends this run to `output`.
        string output = tiny.PathFor("sigint");
        string config = tiny.WriteConfig("sigint", tiny.PathFor("unused-output"), ("per_device_train_batch_size", 2), ("cutoff_len", 32));
        string[] overrides = [$"output_dir={output}", $"max_steps={MaxSteps}", "save_steps=100"];

        var (exitCode, stderr) = Cli.CliProcess.RunAndInterrupt(["train", config, .. overrides], afterLineStarting: $"[step 2/{MaxSteps} ", TimeSpan.FromMinutes(2));
        Assert.True(exitCode == 130, $"exit code {exitCode}:\n{stderr}");
        Assert.Contains("[sharptune] interrupted: finishing this step and saving a checkpoint", stderr);
        string checkpoint = Assert.Single(Directory.GetDirectories(output));
        int stoppedAt = int.Parse(Path.GetFileName(checkpoint)["checkpoint-".Length..]);
        Assert.InRange(stoppedAt, 2, MaxSteps - 1);

        const string marker = "; resume with: ";
        string hint = stderr.Split('\n').Single(l => l.StartsWith($"[sharptune] stopped at step {stoppedAt}/{MaxSteps}{marker}", StringComparison.Ordinal));
        string[] command = hint[(hint.IndexOf(marker, StringComparison.Ordinal) + marker.Length)..].Trim().Split(' ');
        Assert.Equal(["sharptune", "train", config, .. overrides, $"resume_from_checkpoint={checkpoint}"], command);

        var resumed = TinyModelFixture.Train(command[2..]);
        Assert.Contains($"resumed from {checkpoint} at step {stoppedAt}/{MaxSteps}", resumed.Stderr);
        using var state = TinyModelFixture.ReadJson(Path.Combine(output, "trainer_state.json"));
        Assert.Equal(MaxSteps, state.RootElement.GetProperty("global_step").GetInt32());
        var logged = state.RootElement.GetProperty("log_history").EnumerateArray()
            .Where(e => e.TryGetProperty("loss", out _)).Select(e => e.GetProperty("step").GetInt32());
        Assert.Equal(Enumerable.Range(1, MaxSteps), logged);
        Assert.False(Directory.Exists(tiny.PathFor("unused-output")));
    }
}
