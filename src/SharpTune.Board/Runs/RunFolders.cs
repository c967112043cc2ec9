using System.Text.Json.Nodes;
using SharpTune.Training.Trainer;

namespace SharpTune.Board.Runs;

/// <summary>
/// The runs under saves/ (saves/MODEL/TYPE/RUN): the board's own, with their <see cref="RunRecord"/>, and those
/// started from the command line into the saves folder, known by their trainer_log.jsonl.
/// </summary>
public static class RunFolders
{
    /// <summary>Every run folder's real path, newest first by name within each model and method.</summary>
    public static IEnumerable<string> All(BoardRoots roots)
    {
        string saves = roots[BoardRoot.Saves];
        if (!Directory.Exists(saves)) yield break;
        foreach (string model in Directory.EnumerateDirectories(saves).Order(StringComparer.Ordinal))
            foreach (string method in Directory.EnumerateDirectories(model).Order(StringComparer.Ordinal))
                foreach (string run in Directory.EnumerateDirectories(method).OrderDescending(StringComparer.Ordinal))
                    if (File.Exists(Path.Combine(run, RunRecord.FileName)) || File.Exists(Path.Combine(run, TrainerLogFile.FileName)))
                        yield return run;
    }

    /// <summary>The board's runs with their records (a folder whose record cannot be read is left out, as it is not one).</summary>
    public static IEnumerable<(string Dir, RunRecord Record)> BoardRuns(BoardRoots roots)
    {
        foreach (string dir in All(roots))
        {
            RunRecord? record;
            try { record = RunRecord.Read(dir); }
            catch (InvalidDataException) { continue; }
            if (record is not null) yield return (dir, record);
        }
    }

    /// <summary>A run as the page lists it: where, what, its state (a command-line run's is "finished" once it has its results, else "external").</summary>
    public static JsonObject Describe(BoardRoots roots, string dir)
    {
        var summary = new JsonObject
        {
            ["id"] = roots.Display(dir),
            ["name"] = Path.GetFileName(dir),
            ["method"] = Path.GetFileName(Path.GetDirectoryName(dir)),
            ["model"] = Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(dir))),
        };
        RunRecord? record;
        try
        {
            record = RunRecord.Read(dir);
        }
        catch (InvalidDataException e)
        {
            summary["state"] = "failed";
            summary["error"] = e.Message;
            return summary;
        }
        if (record is null)
        {
            summary["source"] = "command line";
            summary["state"] = File.Exists(Path.Combine(dir, "train_results.json")) ? "finished" : "external";
            return summary;
        }
        summary["source"] = "board";
        foreach (var (key, value) in record.ToJson()) summary[key] = value?.DeepClone();
        return summary;
    }
}
