using System.Text.Json;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Data;

/// <summary>One file of tests/fixtures/sft_preprocess (LLaMA-Factory's own supervised preprocessing outputs).</summary>
public sealed class SftPreprocessFixture
{
    private static readonly Dictionary<string, Tokenizer> Tokenizers = new();
    private static readonly Dictionary<string, SftPreprocessFixture> Loaded = new();

    /// <summary>The parsed file, shared by all tests (fixtures are read-only).</summary>
    public static SftPreprocessFixture Get(string file)
    {
        lock (Loaded)
        {
            if (!Loaded.TryGetValue(file, out var fx))
                Loaded[file] = fx = new SftPreprocessFixture(file);
            return fx;
        }
    }

    private SftPreprocessFixture(string file)
    {
        Path = TestPaths.Fixtures("sft_preprocess", file);
        Root = JsonDocument.Parse(File.ReadAllText(Path)).RootElement;
        TokenizerName = Root.GetProperty("tokenizer").GetProperty("name").GetString()!;
        TokenizerDir = TestPaths.Fixtures("tokenizers", TokenizerName);
        Cases = Root.GetProperty("cases").EnumerateArray().ToList();
    }

    public string Path { get; }
    public JsonElement Root { get; }
    public string TokenizerName { get; }
    public string TokenizerDir { get; }
    public IReadOnlyList<JsonElement> Cases { get; }

    public Tokenizer Tokenizer
    {
        get
        {
            lock (Tokenizers)
            {
                if (!Tokenizers.TryGetValue(TokenizerDir, out var t))
                    Tokenizers[TokenizerDir] = t = Tokenizer.FromDirectory(TokenizerDir);
                return t;
            }
        }
    }

    public static int[] Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt32()).ToArray();

    public static IEnumerable<object[]> CaseIds(string file) =>
        Get(file).Cases.Select(c => new object[] { file, c.GetProperty("id").GetString()! });
}
