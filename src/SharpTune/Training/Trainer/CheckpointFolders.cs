using System.Globalization;
using System.Text.RegularExpressions;

namespace SharpTune.Training.Trainer;

/// <summary>
/// The <c>checkpoint-N</c> folders of an output directory: written whole or not at all, found, and rotated.
/// A checkpoint is written into a hidden temporary sibling and renamed into place only after every file in it has
/// been flushed to disk, so a crash never leaves a half checkpoint under a final name and never touches the
/// previous checkpoints.
/// </summary>
public static partial class CheckpointFolders
{
    public const string Prefix = "checkpoint-";

    public static string PathFor(string outputDir, int step) => Path.Combine(outputDir, Prefix + step.ToString(CultureInfo.InvariantCulture));

    /// <summary>
    /// Writes checkpoint <paramref name="step"/>: <paramref name="writeContents"/> fills an empty temporary folder,
    /// which then replaces any existing folder of the same step. On failure the temporary folder is removed and the
    /// exception propagates.
    /// </summary>
    public static string Write(string outputDir, int step, Action<string> writeContents)
    {
        Directory.CreateDirectory(outputDir);
        string final = PathFor(outputDir, step);
        string temp = Path.Combine(outputDir, $".{Prefix}{step}.{Guid.NewGuid():N}{TempSuffix}");
        Directory.CreateDirectory(temp);
        try
        {
            writeContents(temp);
            if (Directory.Exists(final))
            {
                // Same step saved again (an end-of-epoch save right after the final step's save): move the old
                // folder aside first, since a directory cannot be renamed over a non-empty one.
                string old = Path.Combine(outputDir, $".{Prefix}{step}.{Guid.NewGuid():N}{TempSuffix}");
                Directory.Move(final, old);
                Directory.Move(temp, final);
                Directory.Delete(old, recursive: true);
            }
            else
            {
                Directory.Move(temp, final);
            }
            return final;
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
    }

    /// <summary>The complete checkpoints of <paramref name="outputDir"/>, oldest (lowest step) first.</summary>
    public static IReadOnlyList<(int Step, string Path)> List(string outputDir)
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

    /// <summary>transformers' get_last_checkpoint: the checkpoint with the highest step, or null.</summary>
    public static string? Latest(string outputDir) => List(outputDir) is { Count: > 0 } all ? all[^1].Path : null;

    /// <summary>Deletes the oldest checkpoints until at most <paramref name="limit"/> remain (no limit when null or ≤ 0).</summary>
    public static IReadOnlyList<string> Rotate(string outputDir, int? limit)
    {
        if (limit is not > 0) return [];
        var all = List(outputDir);
        var deleted = new List<string>();
        for (int i = 0; i < all.Count - limit.Value; i++)
        {
            Directory.Delete(all[i].Path, recursive: true);
            deleted.Add(all[i].Path);
        }
        return deleted;
    }

    /// <summary>Removes temporary folders left by a run that crashed while writing a checkpoint.</summary>
    public static void RemoveAbandoned(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return;
        foreach (string dir in Directory.EnumerateDirectories(outputDir, $".{Prefix}*{TempSuffix}"))
            Directory.Delete(dir, recursive: true);
    }

    private const string TempSuffix = ".tmp";

    [GeneratedRegex(@"^checkpoint-(\d+)$")]
    private static partial Regex CheckpointName();
}
