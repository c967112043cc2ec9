using SharpTune.IO;

namespace SharpTune.Training.Trainer;

/// <summary>transformers' Trainer.save_metrics: {split}_results.json, merged into all_results.json.</summary>
public static class ResultFiles
{
    /// <summary>
    /// Writes <paramref name="metrics"/> to output_dir/{split}_results.json and merges them into all_results.json
    /// (json.dump with indent 4 and sorted keys, as transformers writes them). Values are doubles, ints or strings.
    /// </summary>
    public static void Write(string outputDir, string split, IReadOnlyList<KeyValuePair<string, object?>> metrics)
    {
        Directory.CreateDirectory(outputDir);
        AtomicFile.WriteText(Path.Combine(outputDir, $"{split}_results.json"), PythonJson.Dumps(metrics, indent: 4, sortKeys: true));
        string allPath = Path.Combine(outputDir, "all_results.json");
        var merged = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (File.Exists(allPath) && PythonJson.Parse(File.ReadAllText(allPath)) is List<KeyValuePair<string, object?>> existing)
            foreach (var (key, value) in existing) merged[key] = value;
        foreach (var (key, value) in metrics) merged[key] = value;
        AtomicFile.WriteText(allPath, PythonJson.Dumps(merged.ToList(), indent: 4, sortKeys: true));
    }
}
