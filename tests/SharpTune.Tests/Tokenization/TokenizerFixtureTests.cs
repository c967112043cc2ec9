using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

/// <summary>Every case of the reference encodings produced by the Hugging Face Rust tokenizers library.</summary>
public class TokenizerFixtureTests
{
    public static TheoryData<string> Models => new() { "qwen2.5-instruct", "qwen3", "qwen1.5-chat" };

    private static readonly ConcurrentDictionary<string, Tokenizer> Loaded = new();

    internal static Tokenizer Load(string model) =>
        Loaded.GetOrAdd(model, name => Tokenizer.FromDirectory(TestPaths.Fixtures("tokenizers", name)));

    [Theory]
    [MemberData(nameof(Models))]
    public void AllReferenceCasesMatch(string model)
    {
        Tokenizer tokenizer = Load(model);
        using JsonDocument fixture = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixtures("tokenizer", $"{model}.encodings.json")));
        var failures = new List<string>();
        int count = 0;
        foreach (JsonElement testCase in fixture.RootElement.GetProperty("cases").EnumerateArray())
        {
            count++;
            string id = testCase.GetProperty("id").GetString()!;
            string text = testCase.GetProperty("text").GetString()!;
            int[] expectedIds = testCase.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            string expectedDecoded = testCase.GetProperty("decoded").GetString()!;
            string expectedSkipped = testCase.GetProperty("decoded_skip_special_tokens").GetString()!;

            int[] ids = tokenizer.Encode(text);
            if (!ids.SequenceEqual(expectedIds))
                failures.Add($"{id} ids: expected [{string.Join(",", expectedIds)}] got [{string.Join(",", ids)}]");
            if (tokenizer.Decode(expectedIds) != expectedDecoded)
                failures.Add($"{id} decoded: got {JsonSerializer.Serialize(tokenizer.Decode(expectedIds))}");
            if (tokenizer.Decode(expectedIds, skipSpecialTokens: true) != expectedSkipped)
                failures.Add($"{id} decoded_skip_special_tokens: got {JsonSerializer.Serialize(tokenizer.Decode(expectedIds, true))}");

            var tokens = testCase.GetProperty("tokens").EnumerateArray().Select(e => e.GetString()).ToArray();
            for (int i = 0; i < expectedIds.Length; i++)
            {
                if (tokenizer.IdToToken(expectedIds[i]) != tokens[i] || tokenizer.TokenToId(tokens[i]!) != expectedIds[i])
                    failures.Add($"{id} token {i}: id {expectedIds[i]} <-> {tokens[i]}");
            }
        }
        Assert.Equal(fixture.RootElement.GetProperty("count").GetInt32(), count);
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches in {model}:\n" + string.Join("\n", failures));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void StreamingDecodeConcatenatesToDecode(string model)
    {
        Tokenizer tokenizer = Load(model);
        using JsonDocument fixture = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixtures("tokenizer", $"{model}.encodings.json")));
        foreach (JsonElement testCase in fixture.RootElement.GetProperty("cases").EnumerateArray())
        {
            int[] ids = testCase.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            foreach (bool skip in new[] { false, true })
            {
                var decoder = new StreamingDecoder(tokenizer, skip);
                var streamed = new StringBuilder();
                foreach (int id in ids)
                    streamed.Append(decoder.Push(id));
                streamed.Append(decoder.Flush());
                Assert.Equal(tokenizer.Decode(ids, skip), streamed.ToString());
            }
        }
    }
}
