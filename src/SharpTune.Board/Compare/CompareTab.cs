using System.Text.Json.Nodes;
using SharpTune.Board.Tasks;
using SharpTune.IO;
using SharpTune.Quantization;
using SharpTune.Workflows;

namespace SharpTune.Board.Compare;

/// <summary>
/// What the compare tab asks: the base and each adapter (a column each), questions typed one per line or the
/// records of datasets in the data root (their files confined to it), and the folder the report goes to.
/// </summary>
public sealed record CompareTabRequest(string ModelDir, IReadOnlyList<string> Adapters, string Template, IReadOnlyList<string> Questions,
    IReadOnlyList<string> Datasets, string DatasetDir, int? MaxSamples, int MaxNewTokens, string OutputDir, QuantizationOptions? Quantization);

/// <summary>
/// The compare tab: <see cref="CompareWorkflow"/> (what <c>sharptune compare</c> runs: greedy, seed 42, the same
/// questions to every model) as a board task; its result is every column's answers and mean scores, and the report files.
/// </summary>
public static class CompareTab
{
    /// <summary>The file typed questions are written to in the report folder, one per line, as <c>compare --questions</c> reads it.</summary>
    public const string QuestionsFileName = "questions.txt";

    /// <param name="display">How the page shows a path (the report files).</param>
    public static BoardTask Start(BoardTaskSlot slot, CompareTabRequest r, Func<string, string> display)
    {
        if (r.Questions.Any(q => q.Contains('\n') || q.Contains('\r')))
            throw new ArgumentException("a typed question must be one line");
        if (r.MaxNewTokens < 1) throw new ArgumentException($"max_new_tokens must be positive, got {r.MaxNewTokens}");
        return slot.Start("compare", (cancellation, observer) =>
        {
            string? questionsFile = null;
            if (r.Questions.Count > 0)
            {
                Directory.CreateDirectory(r.OutputDir);
                questionsFile = Path.Combine(r.OutputDir, QuestionsFileName);
                AtomicFile.WriteText(questionsFile, string.Join("\n", r.Questions) + "\n");
            }
            var request = new CompareRequest(r.ModelDir, r.Adapters, questionsFile, r.Datasets, r.DatasetDir, r.MaxSamples, r.Template,
                System: null, BatchSize: 4, r.OutputDir, r.Quantization, d => d with { MaxNewTokens = r.MaxNewTokens }, ConfineDatasetFilesTo: r.DatasetDir);
            var result = CompareWorkflow.Run(request, cancellation, observer);
            return new JsonObject
            {
                ["markdown"] = display(result.MarkdownPath),
                ["html"] = display(result.HtmlPath),
                ["questions"] = new JsonArray(result.Questions.Select(q => (JsonNode?)new JsonObject { ["question"] = q.Question, ["reference"] = q.Reference }).ToArray()),
                ["columns"] = new JsonArray(result.Columns.Select(c => (JsonNode?)new JsonObject
                {
                    ["name"] = c.Name,
                    ["adapter"] = c.AdapterDirectory is null ? null : display(c.AdapterDirectory),
                    ["scores"] = c.MeanScores() is { } mean ? new JsonObject(mean.Select(m => KeyValuePair.Create(m.Key, (JsonNode?)m.Value))) : null,
                    ["answers"] = new JsonArray(c.Answers.Select(a => (JsonNode?)new JsonObject
                    {
                        ["text"] = a.Text,
                        ["scores"] = a.Scores is { } s ? new JsonObject { ["bleu-4"] = s.Bleu4, ["rouge-l"] = s.RougeL } : null,
                    }).ToArray()),
                }).ToArray()),
            };
        });
    }
}
