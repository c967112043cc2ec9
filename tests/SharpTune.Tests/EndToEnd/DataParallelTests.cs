using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using SharpTune.IO;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>Skips, saying why, where Open MPI's mpirun or libmpi.so.40 is missing (CI installs both).</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        if (DataParallelRun.Mpirun is null) Skip = "data-parallel training needs Open MPI's mpirun on PATH (Debian: openmpi-bin, libopenmpi-dev)";
        else if (!NativeLibrary.TryLoad("libmpi.so.40", out _)) Skip = "data-parallel training needs Open MPI's libmpi.so.40 (Debian: libopenmpi-dev)";
    }
}

/// <summary>The built `sharptune` run under `mpirun`, on this machine, one engine thread per rank.</summary>
public static class DataParallelRun
{
    public static string? Mpirun { get; } = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
        .Select(dir => Path.Combine(dir, "mpirun")).FirstOrDefault(File.Exists);

    /// <summary>
    /// mpirun's options for a machine without a network in a container, run as root in CI: shared-memory transport
    /// without the single-copy mechanism a container may forbid, more ranks than cores allowed.
    /// </summary>
    private static readonly string[] LocalOptions =
        ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader", "--mca", "btl_vader_single_copy_mechanism", "none"];

    public static string Cli => Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli");

    /// <summary>`mpirun -np <paramref name="ranks"/> sharptune ARGS`; returns the exit code, stdout and stderr and how long it ran.</summary>
    public static (CliResult Result, TimeSpan Elapsed) Run(int ranks, params string[] args) =>
        RunApps([(ranks, [Cli, .. args])]);

    /// <summary>
    /// mpirun with one app context per entry (<c>-np N PROGRAM ARGS : ...</c>), ranks numbered in that order; a rank
    /// of its own environment runs through env(1).
    /// </summary>
    public static (CliResult Result, TimeSpan Elapsed) RunApps(IReadOnlyList<(int Ranks, string[] Command)> apps)
    {
        var start = new ProcessStartInfo(Mpirun!)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (string option in LocalOptions) start.ArgumentList.Add(option);
        for (int i = 0; i < apps.Count; i++)
        {
            if (i > 0) start.ArgumentList.Add(":");
            start.ArgumentList.Add("-np");
            start.ArgumentList.Add(apps[i].Ranks.ToString(System.Globalization.CultureInfo.InvariantCulture));
            foreach (string arg in apps[i].Command) start.ArgumentList.Add(arg);
        }
        start.Environment["SHARPTUNE_NUM_THREADS"] = "1";
        start.Environment.Remove(FaultInjection.Variable);
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var stderr = new StringBuilder();
        process.ErrorDataReceived += (_, e) => { lock (stderr) stderr.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"mpirun did not exit within 3 minutes:\n{stderr}");
        }
        process.WaitForExit();
        lock (stderr) return (new CliResult(process.ExitCode, stdout, stderr.ToString()), clock.Elapsed);
    }
}

/// <summary>
/// Issue 21 item 5: `mpirun -np 2 sharptune train` is transformers' DDP on two processes. Its gradients are the mean
/// over the ranks, each rank trains on its shard of the global batch, and the logged loss is the mean of the ranks'
/// losses (transformers gathers tr_loss and takes the mean): so 2 ranks × micro-batch 1 × GA g trains exactly as one
/// process with GA 2g over the same examples, and the references here are single-process runs of the same CLI.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class DataParallelTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private const double Tolerance = 1e-6;

    private string Config(string name, string outputDir, params (string Key, object? Value)[] keys) =>
        tiny.WriteConfig(name, outputDir, [("per_device_train_batch_size", 1), .. keys]);

    private static void TrainAlone(string config)
    {
        var r = CliProcess.Run(["train", config], new Dictionary<string, string?> { ["SHARPTUNE_NUM_THREADS"] = "1" });
        Assert.True(r.ExitCode == 0, $"train exited with {r.ExitCode}:\n{r.Stderr}");
    }

    private static void TrainOnRanks(int ranks, string config)
    {
        var (r, _) = DataParallelRun.Run(ranks, "train", config);
        Assert.True(r.ExitCode == 0, $"mpirun -np {ranks} train exited with {r.ExitCode}:\n{r.Stderr}");
    }

    [MpiFact]
    public void TwoRanksOfMicroBatchOne_TrainAsOneProcessAccumulatingTwo()
    {
        string alone = tiny.PathFor("dp-alone-ga2"), ranks = tiny.PathFor("dp-ranks-ga1");
        TrainAlone(Config("dp-alone-ga2", alone, ("gradient_accumulation_steps", 2)));
        TrainOnRanks(2, Config("dp-ranks-ga1", ranks, ("gradient_accumulation_steps", 1)));

        AssertSameTraining(alone, ranks);
        // Rank 1 wrote nothing beside rank 0: the same files as the single process's.
        Assert.Equal(Entries(alone), Entries(ranks));
    }

    [MpiFact]
    public void TwoRanksAccumulatingTwo_TrainAsOneProcessAccumulatingFour()
    {
        string alone = tiny.PathFor("dp-alone-ga4"), ranks = tiny.PathFor("dp-ranks-ga2");
        TrainAlone(Config("dp-alone-ga4", alone, ("gradient_accumulation_steps", 4), ("max_steps", 3), ("save_steps", 2)));
        TrainOnRanks(2, Config("dp-ranks-ga2", ranks, ("gradient_accumulation_steps", 2), ("max_steps", 3), ("save_steps", 2)));
        AssertSameTraining(alone, ranks);
    }

    /// <summary>
    /// A run whose rank 0 dies after its first checkpoint stops as a whole, and the same command resumes it with the
    /// same world size to the uninterrupted run's weights (dropout on: each rank's generator is saved); a run with
    /// another number of processes is refused with what to do.
    /// </summary>
    [MpiFact]
    public void AKilledRunResumesOnTheSameRanks_ToTheUninterruptedRun_AndAnotherWorldSizeIsRefused()
    {
        (string Key, object? Value)[] keys = [("gradient_accumulation_steps", 1), ("lora_dropout", 0.1), ("max_steps", 5), ("save_steps", 2)];
        string whole = tiny.PathFor("dp-whole");
        TrainOnRanks(2, Config("dp-whole", whole, keys));

        string output = tiny.PathFor("dp-resumed");
        string config = Config("dp-resumed", output, keys);
        var (killed, _) = DataParallelRun.RunApps([(2, ["env", $"{FaultInjection.Variable}=checkpoint-saved:1", DataParallelRun.Cli, "train", config])]);
        Assert.NotEqual(0, killed.ExitCode);
        Assert.Equal(["checkpoint-2"], Directory.GetDirectories(output).Select(Path.GetFileName));

        var alone = CliProcess.Run(["train", config]);
        Assert.Equal(1, alone.ExitCode);
        Assert.Contains($"checkpoint {Path.Combine(output, "checkpoint-2")} was trained by 2 processes and this run has 1", alone.Stderr);
        Assert.Contains("resume with the same number (mpirun -np 2)", alone.Stderr);

        TrainOnRanks(2, config);
        Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, "adapter_model.safetensors")), TinyModelFixture.TensorBytes(Path.Combine(output, "adapter_model.safetensors")));
        Assert.Equal(TinyModelFixture.TrainerLog(whole), TinyModelFixture.TrainerLog(output));
    }

    /// <summary>Rank 1 is killed in the middle of a step: rank 0, waiting for its gradients, is stopped too, promptly.</summary>
    [MpiFact]
    public void ARankKilledMidStep_StopsEveryRankPromptly_LeavingOnlyCompleteCheckpoints()
    {
        string output = tiny.PathFor("dp-rank-killed");
        string config = Config("dp-rank-killed", output, ("gradient_accumulation_steps", 1), ("max_steps", 6), ("save_steps", 2));
        var (r, elapsed) = DataParallelRun.RunApps(
        [
            (1, [DataParallelRun.Cli, "train", config]),
            (1, ["env", $"{FaultInjection.Variable}=micro-batch-done:4", DataParallelRun.Cli, "train", config]),
        ]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("killed at micro-batch-done:4", r.Stderr);
        Assert.True(elapsed < TimeSpan.FromSeconds(60), $"the job took {elapsed.TotalSeconds:0} s to stop:\n{r.Stderr}");
        AssertCompleteCheckpointsOnly(output, ["checkpoint-2"]);
    }

    /// <summary>Rank 1 fails with an error while rank 0 goes on: every rank stops, with rank 1's message.</summary>
    [MpiFact]
    public void ARankThatThrows_StopsEveryRankWithItsMessage_AndNothingIsWritten()
    {
        string output = tiny.PathFor("dp-rank-throws");
        string config = Config("dp-rank-throws", output, ("gradient_accumulation_steps", 1));
        var (r, elapsed) = DataParallelRun.RunApps(
        [
            (1, [DataParallelRun.Cli, "train", config]),
            (1, [DataParallelRun.Cli, "train", config, "dataset=no_such_dataset"]),
        ]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("error: rank 1 of 2: ", r.Stderr);
        Assert.Contains("no_such_dataset", r.Stderr);
        Assert.True(elapsed < TimeSpan.FromSeconds(60), $"the job took {elapsed.TotalSeconds:0} s to stop:\n{r.Stderr}");
        AssertCompleteCheckpointsOnly(output, []);
        Assert.False(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
        Assert.False(File.Exists(Path.Combine(output, "trainer_log.jsonl")));
    }

    /// <summary>PPO's own loop does not average over ranks, so several ranks are refused before anything is written.</summary>
    [MpiFact]
    public void StagePpoOnSeveralRanks_IsRefusedNamingTheStagesThatTrainDataParallel()
    {
        string output = tiny.PathFor("dp-ppo");
        string config = Config("dp-ppo", output, ("stage", "ppo"), ("reward_model_type", "api"), ("reward_model", "http://127.0.0.1:9/"));
        var (r, _) = DataParallelRun.Run(2, "train", config);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("stage ppo trains in one process, but mpirun started 2", r.Stderr);
        Assert.False(File.Exists(Path.Combine(output, "trainer_log.jsonl")));
    }

    private static void AssertSameTraining(string alone, string ranks)
    {
        var expectedLog = TinyModelFixture.TrainerLog(alone);
        var actualLog = TinyModelFixture.TrainerLog(ranks);
        Assert.Equal(expectedLog.Select(l => l.Step), actualLog.Select(l => l.Step));
        Assert.Contains(expectedLog, l => l.Loss is not null);
        foreach (var (expected, actual) in expectedLog.Zip(actualLog))
            Assert.True(expected.Loss is null ? actual.Loss is null : Math.Abs(expected.Loss.Value - actual.Loss!.Value) <= Tolerance,
                $"step {expected.Step}: loss {actual.Loss} on two ranks, {expected.Loss} alone");
        // The gradient norm before clipping: Adam and clipping would hide a sum taken for the mean.
        var expectedNorms = GradNorms(alone);
        var actualNorms = GradNorms(ranks);
        Assert.Equal(expectedNorms.Count, actualNorms.Count);
        Assert.NotEmpty(expectedNorms);
        foreach (var (expected, actual) in expectedNorms.Zip(actualNorms))
            Assert.True(Math.Abs(expected - actual) <= Tolerance, $"grad_norm {actual} on two ranks, {expected} alone");
        double TrainLoss(string dir)
        {
            using var results = TinyModelFixture.ReadJson(Path.Combine(dir, "train_results.json"));
            return results.RootElement.GetProperty("train_loss").GetDouble();
        }
        Assert.True(Math.Abs(TrainLoss(alone) - TrainLoss(ranks)) <= Tolerance, $"train_loss {TrainLoss(ranks)} on two ranks, {TrainLoss(alone)} alone");

        var expectedWeights = TinyModelFixture.TensorBytes(Path.Combine(alone, "adapter_model.safetensors"));
        var actualWeights = TinyModelFixture.TensorBytes(Path.Combine(ranks, "adapter_model.safetensors"));
        Assert.Equal(expectedWeights.Keys.Order(StringComparer.Ordinal), actualWeights.Keys.Order(StringComparer.Ordinal));
        double largest = 0, largestChange = 0;
        foreach (var (name, bytes) in expectedWeights)
        {
            var expected = MemoryMarshal.Cast<byte, float>(bytes);
            var actual = MemoryMarshal.Cast<byte, float>(actualWeights[name]);
            for (int i = 0; i < expected.Length; i++)
            {
                largest = Math.Max(largest, Math.Abs(expected[i] - actual[i]));
                largestChange = Math.Max(largestChange, Math.Abs(expected[i]));
            }
        }
        Assert.True(largest <= Tolerance, $"adapter weights differ by up to {largest}");
        Assert.True(largestChange > 1e-3, "the adapter did not train");
    }

    /// <summary>trainer_state.json's logged grad_norm values, in order.</summary>
    private static List<double> GradNorms(string outputDir)
    {
        using var state = TinyModelFixture.ReadJson(Path.Combine(outputDir, "trainer_state.json"));
        return [.. state.RootElement.GetProperty("log_history").EnumerateArray()
            .Where(e => e.TryGetProperty("grad_norm", out _)).Select(e => e.GetProperty("grad_norm").GetDouble())];
    }

    private static string[] Entries(string dir) =>
        [.. Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories).Select(e => Path.GetRelativePath(dir, e)).Order(StringComparer.Ordinal)];

    /// <summary>
    /// output_dir holds exactly these checkpoints, each complete and loadable, and no temporaries (a rank stopped
    /// before it started training may not have made output_dir at all).
    /// </summary>
    private static void AssertCompleteCheckpointsOnly(string output, string[] checkpoints)
    {
        if (checkpoints.Length == 0 && !Directory.Exists(output)) return;
        Assert.Equal(checkpoints, Directory.GetDirectories(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(Entries(output), e => AtomicFile.IsTemporary(Path.GetFileName(e)));
        foreach (string checkpoint in checkpoints)
        {
            string dir = Path.Combine(output, checkpoint);
            Assert.NotEmpty(TinyModelFixture.TensorBytes(Path.Combine(dir, "adapter_model.safetensors")));
            Assert.NotEmpty(TinyModelFixture.TensorBytes(Path.Combine(dir, "optimizer.safetensors")));
            using var state = TinyModelFixture.ReadJson(Path.Combine(dir, "resume_state.json"));
            Assert.Equal(2, state.RootElement.GetProperty("world_size").GetInt32());
        }
    }
}
