using System.Text.Json;
using SharpTune.Evaluation.Metrics;
using SharpTune.Evaluation.Prediction;

namespace SharpTune.Board.Evaluate;

/// <summary>One line of generated_predictions.jsonl with its own BLEU-4 and ROUGE scores.</summary>
/// <param name="Line">The line's number in the file, from 1.</param>
public sealed record ScoredPrediction(int Line, string Prompt, string Reference, string Prediction, GenerationScores Scores);

/// <summary>A page of scored predictions, and how many lines the file holds.</summary>
public sealed record PredictionsPage(IReadOnlyList<ScoredPrediction> Rows, int Total);

/// <summary>
/// The predictions browser: reads a prediction run's generated_predictions.jsonl (prompt, predict, label per line, as
/// <see cref="PredictionRun"/> writes it) a page at a time and scores each row with the project's metric code
/// (<see cref="GenerationMetrics.Score"/>: the same BLEU-4 and ROUGE a prediction run averages into predict_results.json).
/// </summary>
public static class PredictionsBrowser
{
    /// <summary>The most rows one page holds: each row is segmented and scored when it is read.</summary>
    public const int MaxPageSize = 100;

    /// <exception cref="InvalidDataException">A line of the page is not a prediction (file, line and field named), or the file is missing.</exception>
    public static PredictionsPage Read(string runDir, int offset, int limit)
    {
        if (offset < 0) throw new ArgumentException($"offset must not be negative, got {offset}");
        if (limit < 1 || limit > MaxPageSize) throw new ArgumentException($"limit must be between 1 and {MaxPageSize}, got {limit}");
        string path = Path.Combine(runDir, PredictionRun.PredictionsFileName);
        if (!File.Exists(path)) throw new InvalidDataException($"{path} does not exist: the run has not made predictions (do_predict with predict_with_generate)");
        var rows = new List<ScoredPrediction>();
        int total = 0, lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Length == 0) continue;
            int index = total++;
            if (index < offset || rows.Count == limit) continue;
            rows.Add(Parse(path, lineNumber, line));
        }
        return new PredictionsPage(rows, total);
    }

    private static ScoredPrediction Parse(string path, int lineNumber, string line)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}, line {lineNumber}: not JSON ({e.Message})");
        }
        using (doc)
        {
            string Field(string name) =>
                doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
                    ? v.GetString()!
                    : throw new InvalidDataException($"{path}, line {lineNumber}: field '{name}' must be a string");
            string prompt = Field("prompt"), prediction = Field("predict"), reference = Field("label");
            return new ScoredPrediction(lineNumber, prompt, reference, prediction, GenerationMetrics.Score(prediction, reference));
        }
    }
}
