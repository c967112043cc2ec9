using System.Text.Json;
using SharpTune.Evaluation.Metrics;

namespace SharpTune.Data.Building;

/// <summary>
/// Self-instruct's pieces (github.com/yizhongw/self-instruct, <c>self_instruct/bootstrap_instructions.py</c>): its
/// seed-task file and its novelty rule, a new instruction kept only if its ROUGE-L F-score against every instruction
/// already in the pool (seeds and kept ones) is at most 0.7. Self-instruct scores with rouge_score's default
/// tokenizer (lower case, every character outside [a-z0-9] a separator), which drops Chinese text entirely, so every
/// Chinese instruction would score 0 and pass; here ROUGE-L is the project's one (<see cref="GenerationMetrics.RougeL"/>:
/// jieba words, as LLaMA-Factory scores predictions) on lower-cased text, which agrees with rouge_score on English
/// word sequences but also counts punctuation marks as words, and segments Chinese into words.
/// </summary>
public static class SelfInstruct
{
    public const double MaxRougeL = 0.7;

    /// <summary>The instructions of a seed-task file as self-instruct's <c>seed_tasks.jsonl</c> holds them: one JSON object per line with an <c>instruction</c> string (other fields ignored).</summary>
    /// <exception cref="InvalidDataException">A line is not such an object, or the file has none: the message names the file, line and field.</exception>
    public static IReadOnlyList<string> ReadSeedTasks(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist", path);
        var instructions = new List<string>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Trim().Length == 0) continue;
            try
            {
                using var document = JsonDocument.Parse(line);
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                    throw new InvalidDataException($"{path}: line {lineNumber}: a seed task must be a JSON object");
                if (!document.RootElement.TryGetProperty("instruction", out var instruction) || instruction.ValueKind != JsonValueKind.String
                    || instruction.GetString()!.Trim().Length == 0)
                    throw new InvalidDataException($"{path}: line {lineNumber}: field \"instruction\" must be a non-empty string");
                instructions.Add(instruction.GetString()!.Trim());
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}: line {lineNumber}: not valid JSON: {e.Message}");
            }
        }
        if (instructions.Count == 0) throw new InvalidDataException($"{path}: no seed tasks");
        return instructions;
    }

    /// <summary>The ROUGE-L F-score (0..1) of two instructions as the novelty rule compares them.</summary>
    public static double RougeL(string a, string b) => GenerationMetrics.RougeL(a.ToLowerInvariant(), b.ToLowerInvariant()) / 100;

    /// <summary>Whether <paramref name="instruction"/> is new enough to join <paramref name="pool"/>: ROUGE-L ≤ 0.7 against each.</summary>
    public static bool IsNovel(string instruction, IEnumerable<string> pool) => pool.All(other => RougeL(instruction, other) <= MaxRougeL);
}
