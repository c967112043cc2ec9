using SharpTune.IO;

namespace SharpTune.Training.Trainer;

/// <summary>
/// What a trainer does with output_dir's checkpoints around its own, one implementation for every trainer loop
/// (<see cref="Trainer{TExample}"/>, PPO's): a resumed run first rotates (a run killed between a save and its rotation
/// left one more than save_total_limit); a fresh run keeps an earlier run's checkpoints until it has saved its own, so
/// that a crash before then still leaves something to resume (overwrite_output_dir).
/// </summary>
public sealed class RunCheckpoints(string outputDir, int? saveTotalLimit)
{
    private IReadOnlyList<(int Step, string Path)> _superseded = [];

    /// <param name="rotate">False on a rank that writes nothing (data-parallel ranks but 0).</param>
    public void Start(bool resuming, bool rotate, IRunObserver events)
    {
        if (!resuming)
        {
            _superseded = CheckpointFolders.List(outputDir);
            return;
        }
        var deleted = rotate ? CheckpointFolders.Rotate(outputDir, saveTotalLimit) : [];
        if (deleted.Count > 0) events.On(new TrainerNote($"removed {Names(deleted)}: save_total_limit {saveTotalLimit}"));
    }

    /// <summary>Writes checkpoint-STEP atomically, then removes the earlier run's checkpoints and rotates; returns its path.</summary>
    public string Save(int step, Action<string> writeContents, IRunObserver events)
    {
        string path = CheckpointFolders.Write(outputDir, step, writeContents);
        FaultInjection.Point("checkpoint-saved");
        RemoveSuperseded(path, events);
        var deleted = CheckpointFolders.Rotate(outputDir, saveTotalLimit);
        events.On(new CheckpointSaved(path, step, deleted, saveTotalLimit));
        return path;
    }

    /// <summary>Removes the earlier run's checkpoints but <paramref name="kept"/> (this run's own under the same name).</summary>
    public void RemoveSuperseded(string? kept, IRunObserver events)
    {
        var stale = _superseded.Where(c => c.Path != kept && Directory.Exists(c.Path)).ToList();
        _superseded = [];
        foreach (var (_, path) in stale) AtomicFile.DeleteDirectory(path);
        if (stale.Count > 0)
            events.On(new TrainerNote($"removed the earlier run's {Names(stale.Select(c => c.Path))} now that this run has saved its own"));
    }

    private static string Names(IEnumerable<string> paths) => string.Join(", ", paths.Select(Path.GetFileName));
}
