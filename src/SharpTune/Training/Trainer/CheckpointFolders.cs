using System.Globalization;
using System.Text.RegularExpressions;
using SharpTune.IO;

namespace SharpTune.Training.Trainer;

/// <summary>
/// The <c>checkpoint-N</c> folders of an output directory: written whole or not at all, found, and rotated.
/// A checkpoint is written into a hidden temporary sibling and renamed into place only after every file in it has
/// been flushed to disk, so a crash never leaves a half checkpoint under a final name and never touches the
/// previous checkpoints; rotation renames a checkpoint away before deleting it. A <c>checkpoint-N</c> folder that
/// still lacks a file (left by an older version, or by hand) is not listed, and <see cref="RemoveAbandoned"/> removes it.
/// </summary>
public static partial class CheckpointFolders
{
    public const string Prefix = "checkpoint-";

    public static string PathFor(string outputDir, int step) => Path.Combine(outputDir, Prefix + step.ToString(CultureInfo.InvariantCulture));

    /// <summary>
    /// Writes checkpoint <paramref name="step"/>: <paramref name="writeContents"/> fills an empty temporary folder,
    /// which then replaces any existing folder of the same step (an end-of-epoch save right after the final step's
    /// save). On failure the temporary folder is removed and the exception propagates.
    /// </summary>
    public static string Write(string outputDir, int step, Action<string> writeContents)
    {
        Directory.CreateDirectory(outputDir);
        string final = PathFor(outputDir, step);
        string temp = AtomicFile.TemporarySibling(final);
        Directory.CreateDirectory(temp);
        try
        {
            writeContents(temp);
            AtomicFile.ReplaceDirectory(temp, final);
            return final;
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
    }

    /// <summary>The complete checkpoints of <paramref name="outputDir"/>, oldest (lowest step) first.</summary>
    public static IReadOnlyList<(int Step, string Path)> List(string outputDir) =>
        Named(outputDir).Where(c => TrainingCheckpoint.MissingFile(c.Path) is null).ToList();

    /// <summary>transformers' get_last_checkpoint, over complete checkpoints: the one with the highest step, or null.</summary>
    public static string? Latest(string outputDir) => List(outputDir) is { Count: > 0 } all ? all[^1].Path : null;

    /// <summary>Deletes the oldest checkpoints until at most <paramref name="limit"/> remain (no limit when null or ≤ 0).</summary>
    public static IReadOnlyList<string> Rotate(string outputDir, int? limit)
    {
        if (limit is not > 0) return [];
        var all = List(outputDir);
        var deleted = new List<string>();
        for (int i = 0; i < all.Count - limit.Value; i++)
        {
            AtomicFile.DeleteDirectory(all[i].Path);
            deleted.Add(all[i].Path);
        }
        return deleted;
    }

    /// <summary>
    /// Removes what a killed run left in <paramref name="outputDir"/>: temporary files and folders
    /// (<see cref="AtomicFile.IsTemporary"/>) and incomplete <c>checkpoint-N</c> folders. Returns one line per
    /// incomplete checkpoint removed, naming what it lacked.
    /// </summary>
    public static IReadOnlyList<string> RemoveAbandoned(string outputDir)
    {
        AtomicFile.RemoveStaleTemporaries(outputDir);
        var removed = new List<string>();
        foreach (var (_, path) in Named(outputDir))
        {
            if (TrainingCheckpoint.MissingFile(path) is not string missing) continue;
            AtomicFile.DeleteDirectory(path);
            removed.Add($"{Path.GetFileName(path)} ({missing} is missing)");
        }
        return removed;
    }

    /// <summary>Every folder named <c>checkpoint-N</c>, complete or not, lowest step first.</summary>
    private static List<(int Step, string Path)> Named(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return [];
        var found = new List<(int, string)>();
        foreach (string dir in Directory.EnumerateDirectories(outputDir))
        {
            var match = CheckpointName().Match(Path.GetFileName(dir));
            if (match.Success && int.TryParse(match.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out int step))
                found.Add((step, dir));
        }
        found.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return found;
    }

    [GeneratedRegex(@"^checkpoint-(\d+)$")]
    private static partial Regex CheckpointName();
}
