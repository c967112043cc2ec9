using System.Text.Json;
using SharpTune.Data;

namespace SharpTune.Cli.Commands;

/// <summary>
/// The check commands' batch files: JSON objects of lists of lists of integers, `{prefix}input_ids`,
/// `{prefix}attention_mask` and `{prefix}labels` (check grad: no prefix; check pref: `chosen_`, `rejected_`, `kl_`).
/// </summary>
internal static class BatchFile
{
    public static JsonElement ReadRoot(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"input file '{path}' does not exist");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return doc.RootElement.ValueKind == JsonValueKind.Object
                ? doc.RootElement.Clone()
                : throw new InvalidDataException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})");
        }
    }

    public static TrainingBatch Read(string path, JsonElement root, string prefix = "")
    {
        int[][] Matrix(string key)
        {
            key = prefix + key;
            if (!root.TryGetProperty(key, out var e) || e.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{path}: '{key}' must be a list of lists of integers");
            try
            {
                return e.EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
            }
            catch (Exception ex) when (ex is InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{path}: '{key}' must be a list of lists of integers");
            }
        }
        int[][] ids = Matrix("input_ids"), mask = Matrix("attention_mask"), labels = Matrix("labels");
        if (ids.Length == 0 || ids[0].Length == 0) throw new InvalidDataException($"{path}: {prefix}input_ids is empty");
        int t = ids[0].Length;
        foreach (var (name, m) in new[] { ("input_ids", ids), ("attention_mask", mask), ("labels", labels) })
            if (m.Length != ids.Length || m.Any(row => row.Length != t))
                throw new InvalidDataException($"{path}: '{prefix}{name}' must be {ids.Length} rows of {t} values, like {prefix}input_ids");
        return new TrainingBatch(ids.Length, t, ids.SelectMany(r => r).ToArray(), mask.SelectMany(r => r).ToArray(), labels.SelectMany(r => r).ToArray());
    }
}
