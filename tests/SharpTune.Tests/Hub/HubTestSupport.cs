using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Parquet.Serialization;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tests.Data;

namespace SharpTune.Tests.Hub;

/// <summary>
/// What the Hugging Face and ModelScope stand-in tests share: process variables set around in-process loads (these
/// classes run in the serial CLI collection), the request log drained between steps, and the chat-data dataset
/// repository with the local demo records it must train like.
/// </summary>
internal static class HubTestSupport
{
    /// <summary>Sets <paramref name="variables"/> (null: unset) while <paramref name="body"/> runs, then restores them.</summary>
    public static T WithVariables<T>(IReadOnlyDictionary<string, string?> variables, Func<T> body)
    {
        var before = variables.Keys.ToDictionary(k => k, System.Environment.GetEnvironmentVariable);
        foreach (var (key, value) in variables) System.Environment.SetEnvironmentVariable(key, value);
        try
        {
            return body();
        }
        finally
        {
            foreach (var (key, value) in before) System.Environment.SetEnvironmentVariable(key, value);
        }
    }

    public static void WithVariables(IReadOnlyDictionary<string, string?> variables, Action body) =>
        WithVariables(variables, () => { body(); return 0; });

    /// <summary>The requests a stand-in logged since the last drain.</summary>
    public static string[] Drain(ConcurrentQueue<string> requests)
    {
        var seen = requests.ToArray();
        requests.Clear();
        return seen;
    }

    public static readonly string DemoDir = TestPaths.Fixtures("llamafactory");

    /// <summary>
    /// The chat-data dataset repository: alpaca_en_demo's first 12 records as alpaca/train.jsonl and the next 6 as
    /// alpaca/test.jsonl, and 10 glaive tool-call records as a sharegpt parquet shard.
    /// </summary>
    public static Dictionary<string, byte[]> ChatDataFiles()
    {
        var alpaca = JsonDocument.Parse(File.ReadAllText(Path.Combine(DemoDir, "alpaca_en_demo.json"))).RootElement.EnumerateArray().ToList();
        var parquet = new MemoryStream();
        ParquetSerializer.SerializeAsync(CsvParquetDatasetTests.ToolCallRows(10), parquet).GetAwaiter().GetResult();
        return new Dictionary<string, byte[]>
        {
            ["README.md"] = "# chat-data\n"u8.ToArray(),
            ["alpaca/train.jsonl"] = Encoding.UTF8.GetBytes(JsonLines(alpaca.Take(12))),
            ["alpaca/test.jsonl"] = Encoding.UTF8.GetBytes(JsonLines(alpaca.Skip(12).Take(6))),
            ["sharegpt/data/train-00000-of-00001.parquet"] = parquet.ToArray(),
        };
    }

    public static string JsonLines(IEnumerable<JsonElement> records) => string.Concat(records.Select(r => r.GetRawText().ReplaceLineEndings("") + "\n"));

    public static PreparedData Load(string datasetDir, string dataset, int? maxSamples = null) =>
        SupervisedDatasets.Load(new DataArguments { Dataset = [dataset], DatasetDir = datasetDir, CutoffLen = 1024, MaxSamples = maxSamples },
            SftPreprocessFixture.Get("qwen.json").Tokenizer, ChatTemplates.Get("qwen"), seed: 1);

    public static void AssertSameExamples(IEnumerable<SupervisedExample> expected, PreparedData actual)
    {
        var want = expected.ToList();
        Assert.Equal(want.Count, actual.Train.Count);
        for (int i = 0; i < want.Count; i++)
        {
            Assert.Equal(want[i].InputIds, actual.Train[i].InputIds);
            Assert.Equal(want[i].Labels, actual.Train[i].Labels);
        }
    }
}
