using System.Text.Json;
using SharpTune.IO;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// `kill -9` anywhere in training, checkpoint rotation and the final save: the real CLI kills itself at a named point
/// (SHARPTUNE_FAULT, see <see cref="FaultInjection"/>). After every kill each file in output_dir is complete and
/// loadable or absent (a killed writer's temporaries aside), and running the same command again continues to the
/// result of an uninterrupted run, bit for bit.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class CrashSafetyTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    /// <summary>What a complete checkpoint of the tiny LoRA run holds.</summary>
    private static readonly string[] CheckpointFiles =
        ["adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors", "resume_state.json", "trainable_parameters.safetensors", "trainer_state.json"];

    /// <summary>Five steps over two epochs with dropout, a checkpoint per step, two kept: every step saves and rotates.</summary>
    private string Config(string name, string outputDir, params (string Key, object? Value)[] keys) =>
        tiny.WriteConfig(name, outputDir, [("lora_dropout", 0.1), ("max_steps", 5), ("save_steps", 1), ("save_total_limit", 2), .. keys]);

    [PosixFact]
    public void KilledAtEveryPoint_EveryFileIsCompleteOrAbsent_AndTheSameCommandFinishesTheUninterruptedRun()
    {
        string whole = tiny.PathFor("crash-whole");
        TinyModelFixture.Train(Config("crash-whole", whole));

        string output = tiny.PathFor("crash");
        string config = Config("crash", output);
        // A kill before the first checkpoint and one inside a checkpoint's temporary folder: see the tests below.
        string[] kills =
        [
            "folder-written:1",            // checkpoint-1 complete, not yet renamed into place
            "folder-renamed-for-delete:1", // rotation: checkpoint-1 renamed away, not yet deleted
            "log-appended:1",              // resumed from checkpoint-3: step 4 logged past the checkpoint
            "checkpoint-saved:1",          // checkpoint-4 saved, not yet rotated: checkpoints 2 to 4
            "checkpoint-saved:1",          // resumed from checkpoint-4, which rotates 2 away; checkpoint-5 saved
        ];
        foreach (string fault in kills) KillAt(fault, config, output);
        // Every step is done; the final save is not.
        Assert.Equal(["checkpoint-3", "checkpoint-4", "checkpoint-5"], Checkpoints(output));

        // The final save, killed at each file it writes in turn: each run resumes from checkpoint-5 and writes the
        // same files in the same order, until one gets through them all.
        int n = 1;
        for (; ; n++)
        {
            var r = CliProcess.RunWithFault($"file-written:{n}", "train", config);
            if (r.ExitCode == 0) break;
            AssertKilled(r, $"file-written:{n}");
            AssertCompleteOrAbsent(output);
        }
        Assert.True(n > 6, $"the final save wrote only {n - 1} files");

        Assert.DoesNotContain(Directory.GetFileSystemEntries(output, "*", SearchOption.AllDirectories), e => AtomicFile.IsTemporary(Path.GetFileName(e)));
        Assert.Equal(Checkpoints(whole), Checkpoints(output));
        Assert.Equal(Directory.GetFiles(whole).Select(Path.GetFileName).Order(StringComparer.Ordinal), Directory.GetFiles(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (string file in new[] { "adapter_model.safetensors", "checkpoint-5/adapter_model.safetensors", "checkpoint-5/optimizer.safetensors", "checkpoint-4/trainable_parameters.safetensors" })
            Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, file)), TinyModelFixture.TensorBytes(Path.Combine(output, file)));
        Assert.Equal(LoggedSteps(whole), LoggedSteps(output));
        Assert.Equal(StepHistory(whole), StepHistory(output));
    }

    /// <summary>
    /// Item: a kill before the first checkpoint left only trainer_log.jsonl, and the same command then refused the
    /// "non-empty" output_dir for good. Only weights without a checkpoint are refused; a log alone starts afresh.
    /// </summary>
    [PosixFact]
    public void AKillBeforeTheFirstCheckpoint_LeavesALogThatTheSameCommandStartsAfreshOver()
    {
        string output = tiny.PathFor("before-first-checkpoint");
        string config = tiny.WriteConfig("before-first-checkpoint", output, ("max_steps", 4), ("save_steps", 3));
        KillAt("log-appended:2", config, output);
        Assert.Equal([TrainerLogName], Directory.GetFileSystemEntries(output).Select(Path.GetFileName));
        File.WriteAllText(Path.Combine(output, "notes.txt"), "the user's own file");

        var r = TinyModelFixture.RunTraining(config);
        Assert.Contains($"note: output_dir holds the {TrainerLogName} of a run that saved no checkpoint: starting afresh", r.Notes);
        Assert.Equal([1, 2, 3, 4], r.Steps);
        Assert.Equal([1, 2, 3, 4, 4], TinyModelFixture.TrainerLog(output).Select(l => l.Step));
        Assert.Equal("the user's own file", File.ReadAllText(Path.Combine(output, "notes.txt")));
    }

    /// <summary>
    /// Item: a kill during rotation (save_total_limit) left a half-deleted checkpoint under its final name, which
    /// the next run picked as the latest. Rotation now renames a checkpoint away first; a checkpoint-N folder that
    /// lacks files (as older versions left them) is ignored for resuming and removed.
    /// </summary>
    [PosixFact]
    public void AKillDuringRotation_LeavesNoHalfDeletedCheckpoint_AndResumeSkipsAndRemovesIncompleteOnes()
    {
        string output = tiny.PathFor("rotation");
        string config = Config("rotation", output);
        KillAt("folder-renamed-for-delete:1", config, output);
        Assert.Equal(["checkpoint-2", "checkpoint-3"], Checkpoints(output));

        // What a kill in the middle of an older version's Directory.Delete left: checkpoint-33 empty, checkpoint-38
        // without its adapter. Their steps are the highest, so resuming from them is what went wrong.
        Directory.CreateDirectory(Path.Combine(output, "checkpoint-33"));
        string withoutAdapter = Path.Combine(output, "checkpoint-38");
        Directory.CreateDirectory(withoutAdapter);
        foreach (string file in Directory.GetFiles(Path.Combine(output, "checkpoint-3")).Where(f => !f.EndsWith("adapter_model.safetensors", StringComparison.Ordinal)))
            File.Copy(file, Path.Combine(withoutAdapter, Path.GetFileName(file)));

        var r = TinyModelFixture.RunTraining(config);
        Assert.Contains(r.Notes, n => n.StartsWith($"output_dir holds checkpoints: resuming from {Path.Combine(output, "checkpoint-3")}", StringComparison.Ordinal));
        Assert.Contains("removed the incomplete checkpoint-33 (trainable_parameters.safetensors is missing), left by a crashed run", r.Notes);
        Assert.Contains("removed the incomplete checkpoint-38 (adapter_model.safetensors or adapter.safetensors or model.safetensors or model.safetensors.index.json is missing), left by a crashed run", r.Notes);
        Assert.Equal(["checkpoint-4", "checkpoint-5"], Checkpoints(output));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(output), e => AtomicFile.IsTemporary(Path.GetFileName(e)));
    }

    /// <summary>
    /// Item: temporaries of killed writes (.adapter_model.safetensors.*.tmp, .tokenizer.json.*.tmp,
    /// .trainer_state.json.*.tmp, a checkpoint's temporary folder) stayed for good. The next run in the folder
    /// removes them, and nothing else: names that are not SharpTune's temporary names stay.
    /// </summary>
    [PosixFact]
    public void StaleTemporariesOfKilledWrites_AreRemovedByTheNextRun_AndOnlyThose()
    {
        string output = tiny.PathFor("stale");
        string config = tiny.WriteConfig("stale", output, ("max_steps", 3), ("save_steps", 3));
        KillAt("file-written:1", config, output);
        string checkpointTemp = Assert.Single(Directory.GetDirectories(output));
        Assert.Matches(@"^\.checkpoint-3\.[0-9a-f]{32}\.tmp$", Path.GetFileName(checkpointTemp));
        Assert.Matches(@"^\.adapter_model\.safetensors\.[0-9a-f]{32}\.tmp$", Path.GetFileName(Assert.Single(Directory.GetFiles(checkpointTemp))));
        // What kills in the final save leave (the temporary names AtomicFile gives), and files that only look alike.
        string[] ours = [$".tokenizer.json.{Guid.NewGuid():N}.tmp", $".trainer_state.json.{Guid.NewGuid():N}.tmp"];
        string[] theirs = ["notes.tmp", ".notes.tmp", ".draft.1234.tmp", $"tokenizer.json.{Guid.NewGuid():N}.tmp"];
        foreach (string name in ours.Concat(theirs)) File.WriteAllText(Path.Combine(output, name), "x");

        TinyModelFixture.Train(config);
        var left = Directory.GetFileSystemEntries(output).Select(Path.GetFileName).ToHashSet();
        Assert.DoesNotContain(left, n => AtomicFile.IsTemporary(n!));
        Assert.Superset(theirs.ToHashSet(), left!);
        Assert.Equal(["checkpoint-3"], Checkpoints(output));
    }

    /// <summary>
    /// Item: re-running a finished run appended another closing line to trainer_log.jsonl each time, and a line cut
    /// short (a full disk) stayed. The log keeps one line per log, whatever the reruns.
    /// </summary>
    [Fact]
    public void ReRunningAFinishedRun_KeepsOneLinePerLog_AndDropsALineCutShort()
    {
        string output = tiny.PathFor("rerun");
        string config = tiny.WriteConfig("rerun", output, ("max_steps", 3), ("save_steps", 3));
        TinyModelFixture.RunTraining(config);
        var finished = TinyModelFixture.TrainerLog(output);
        Assert.Equal([1, 2, 3, 3], finished.Select(l => l.Step));

        TinyModelFixture.RunTraining(config);
        File.AppendAllText(Path.Combine(output, TrainerLogName), "{\"current_steps\": 3, \"total_st");
        var again = TinyModelFixture.RunTraining(config);
        Assert.Contains(again.Notes, n => n.StartsWith($"output_dir holds checkpoints: resuming from {Path.Combine(output, "checkpoint-3")}", StringComparison.Ordinal));
        Assert.Equal(finished, TinyModelFixture.TrainerLog(output));
    }

    /// <summary>
    /// Item: the shipped demo config set overwrite_output_dir: true, so running the demo command again after a Ctrl+C
    /// or a crash deleted its checkpoints and started over, although the README says the same command resumes. The
    /// shipped config resumes; and overwrite_output_dir keeps the earlier checkpoints until the new run has saved.
    /// </summary>
    [PosixFact]
    public void TheShippedDemoConfigResumes_AndOverwriteKeepsTheCheckpointsUntilTheNewRunSaves()
    {
        string output = tiny.PathFor("demo");
        string[] Command(int maxSteps, int saveSteps, params string[] more) =>
            ["train", Path.Combine(TestPaths.RepoRoot, "examples", "train_lora", "tiny_identity_lora_sft.yaml"),
             $"model_name_or_path={tiny.ModelDir}", $"dataset_dir={TinyModelFixture.BundledData}", $"output_dir={output}",
             "lora_rank=4", "cutoff_len=64", "max_samples=16", "per_device_train_batch_size=4", "logging_steps=1",
             $"max_steps={maxSteps}", $"save_steps={saveSteps}", .. more];

        AssertKilled(CliProcess.RunWithFault("log-appended:3", Command(4, 2)), "log-appended:3");
        Assert.Equal(["checkpoint-2"], Checkpoints(output));
        var resumed = CliRunner.Run(Command(4, 2));
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Contains($"output_dir holds checkpoints: resuming from {Path.Combine(output, "checkpoint-2")}", resumed.Stderr);
        Assert.DoesNotContain("[step 1/4", resumed.Stderr);
        Assert.Equal(["checkpoint-2", "checkpoint-4"], Checkpoints(output));

        // Starting afresh over them, killed before the first save: the earlier checkpoints are still there to resume.
        AssertKilled(CliProcess.RunWithFault("log-appended:1", Command(3, 3, "overwrite_output_dir=true")), "log-appended:1");
        Assert.Equal(["checkpoint-2", "checkpoint-4"], Checkpoints(output));
        // Once the new run has saved, only its checkpoints remain.
        var afresh = CliRunner.Run(Command(3, 3, "overwrite_output_dir=true"));
        Assert.True(afresh.ExitCode == 0, afresh.Stderr);
        Assert.Contains("removed the earlier run's checkpoint-2, checkpoint-4 now that this run has saved its own", afresh.Stderr);
        Assert.Equal(["checkpoint-3"], Checkpoints(output));
    }

    /// <summary>
    /// Item: a killed export left config.json and weights without the tokenizer files, which looked finished, and a
    /// 5 MB temporary. An export is written under a temporary name and renamed into place last, replacing an earlier
    /// export whole; a folder holding anything else is not replaced. (Without an adapter, to keep it quick: merging
    /// changes the tensors written, not how the folder is written.)
    /// </summary>
    [PosixFact]
    public void AKilledExport_LeavesTheEarlierExportOrNone_AndTheSameCommandCompletesIt()
    {
        string parent = tiny.PathFor("exports");
        string exportDir = Path.Combine(parent, "merged");
        string config = Path.Combine(tiny.Root, "export-crash.yaml");
        File.WriteAllText(config, $"""
            model_name_or_path: {JsonSerializer.Serialize(tiny.ModelDir)}
            template: qwen
            export_dir: {JsonSerializer.Serialize(exportDir)}
            """);

        AssertKilled(CliProcess.RunWithFault("export-weights-written:1", "export", config), "export-weights-written:1");
        Assert.False(Directory.Exists(exportDir));
        Assert.Matches(@"^\.merged\.[0-9a-f]{32}\.tmp$", Path.GetFileName(Assert.Single(Directory.GetFileSystemEntries(parent))));

        Assert.True(CliRunner.Run("export", config).ExitCode == 0);
        string[] files = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];
        Assert.Equal(files, Files(exportDir));
        Assert.Equal(["merged"], Directory.GetFileSystemEntries(parent).Select(Path.GetFileName));
        var exported = TinyModelFixture.TensorBytes(exportDir);

        // Replacing it: killed before the new folder is renamed in, the earlier export is there whole; killed after the
        // earlier one was renamed away, there is none; the same command then writes it whole again.
        AssertKilled(CliProcess.RunWithFault("folder-written:1", "export", config), "folder-written:1");
        Assert.Equal(files, Files(exportDir));
        Assert.Equal(exported, TinyModelFixture.TensorBytes(exportDir));
        AssertKilled(CliProcess.RunWithFault("folder-moved-aside:1", "export", config), "folder-moved-aside:1");
        Assert.False(Directory.Exists(exportDir));
        Assert.True(CliRunner.Run("export", config).ExitCode == 0);
        Assert.Equal(files, Files(exportDir));
        Assert.Equal(exported, TinyModelFixture.TensorBytes(exportDir));
        Assert.Equal(["merged"], Directory.GetFileSystemEntries(parent).Select(Path.GetFileName));

        File.WriteAllText(Path.Combine(exportDir, "README.md"), "the user's notes");
        var refused = CliRunner.Run("export", config);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains($"error: export_dir {exportDir} holds README.md, which an export does not write; an export replaces the whole folder, so choose another export_dir or remove it", refused.Stderr);
        Assert.Equal([.. files.Append("README.md").Order(StringComparer.Ordinal)], Files(exportDir));
    }

    private static string[] Files(string dir) => Directory.GetFiles(dir).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToArray();

    /// <summary>Runs `sharptune ARGS` killed at <paramref name="fault"/>, then checks what it left in <paramref name="output"/>.</summary>
    private static void KillAt(string fault, string config, string output)
    {
        AssertKilled(CliProcess.RunWithFault(fault, "train", config), fault);
        AssertCompleteOrAbsent(output);
    }

    private static void AssertKilled(CliResult r, string fault)
    {
        Assert.True(r.ExitCode == 137, $"SHARPTUNE_FAULT={fault}: exit code {r.ExitCode}, expected 137 (SIGKILL):\n{r.Stderr}");
        Assert.Contains($"[sharptune] SHARPTUNE_FAULT: killed at {fault}", r.Stderr);
    }

    /// <summary>
    /// Every checkpoint-N folder holds every file of a checkpoint, and every file under output_dir loads: safetensors
    /// whole, JSON parsed, each trainer_log.jsonl line parsed. Temporary names (a killed writer's) are skipped.
    /// </summary>
    private static void AssertCompleteOrAbsent(string output)
    {
        foreach (string dir in Directory.GetDirectories(output).Where(d => !AtomicFile.IsTemporary(Path.GetFileName(d))))
        {
            Assert.Matches(@"^checkpoint-\d+$", Path.GetFileName(dir));
            Assert.Equal(CheckpointFiles, Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            foreach (string file in Directory.GetFiles(dir)) AssertLoads(file);
        }
        foreach (string file in Directory.GetFiles(output).Where(f => !AtomicFile.IsTemporary(Path.GetFileName(f))))
            AssertLoads(file);
    }

    private static void AssertLoads(string file)
    {
        switch (Path.GetExtension(file))
        {
            case ".safetensors":
                Assert.NotEmpty(TinyModelFixture.TensorBytes(file));
                break;
            case ".json":
                JsonDocument.Parse(File.ReadAllBytes(file)).Dispose();
                break;
            case ".jsonl":
                foreach (string line in File.ReadAllLines(file)) JsonDocument.Parse(line).Dispose();
                break;
            default:
                Assert.Fail($"unexpected file {file}");
                break;
        }
    }

    private const string TrainerLogName = "trainer_log.jsonl";

    private static string[] Checkpoints(string output) =>
        Directory.GetDirectories(output).Select(d => Path.GetFileName(d)!).Where(n => !AtomicFile.IsTemporary(n)).Order(StringComparer.Ordinal).ToArray();

    /// <summary>trainer_log.jsonl without its time-dependent fields, line by line.</summary>
    private static List<string> LoggedSteps(string output) =>
        File.ReadAllLines(Path.Combine(output, TrainerLogName)).Select(line =>
        {
            using var json = JsonDocument.Parse(line);
            var kept = json.RootElement.EnumerateObject()
                .Where(p => p.Name is not ("elapsed_time" or "remaining_time" or "throughput"))
                .Select(p => $"{p.Name}={p.Value.GetRawText()}");
            return string.Join(", ", kept);
        }).ToList();

    /// <summary>trainer_state.json's per-step log entries as written.</summary>
    private static List<string> StepHistory(string output)
    {
        using var state = TinyModelFixture.ReadJson(Path.Combine(output, "trainer_state.json"));
        return state.RootElement.GetProperty("log_history").EnumerateArray()
            .Where(e => e.TryGetProperty("grad_norm", out _)).Select(e => e.GetRawText()).ToList();
    }
}
