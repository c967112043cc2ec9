using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.IO.Safetensors;
using SharpTune.Tests.Model;

namespace SharpTune.Tests.Cli;

/// <summary>The `sharptune check` conformance commands, driven through the real command line.</summary>
[Collection(CliCollection.Name)]
public sealed class CheckCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteBatch(int[][] ids, int[][] mask)
    {
        string path = Path.Combine(_dir, "batch.json");
        File.WriteAllText(path, JsonSerializer.Serialize(new { input_ids = ids, attention_mask = mask }));
        return path;
    }

    [Fact]
    public void ForwardWritesHiddenStateAndLogitsEqualToTransformers()
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        string output = Path.Combine(_dir, "out.safetensors");

        var r = CliRunner.Run("check", "forward", "--model", fx.Directory, "--input", WriteBatch(fx.InputIds, fx.AttentionMask), "--out", output);

        Assert.True(r.ExitCode == 0, r.Stderr);
        using var file = SafetensorsFile.Open(output);
        Assert.Equal([2L, 9, 48], file.Get("last_hidden_state").Shape);
        Assert.Equal([2L, 9, 512], file.Get("logits").Shape);
        foreach (string name in new[] { "last_hidden_state", "logits" })
        {
            float[] expected = fx.ForwardTensor(name), actual = file.ReadFloat32(name);
            int width = (int)file.Get(name).Shape[2], time = fx.InputIds[0].Length;
            for (int b = 0; b < 2; b++)
                for (int t = 0; t < time; t++)
                {
                    if (fx.AttentionMask[b][t] == 0) continue;
                    for (int i = 0; i < width; i++)
                    {
                        int k = (b * time + t) * width + i;
                        Assert.True(Math.Abs(expected[k] - actual[k]) <= 1e-4 + 1e-4 * Math.Abs(expected[k]), $"{name}[{b},{t},{i}]: {expected[k]} vs {actual[k]}");
                    }
                }
        }
    }

    [Theory]
    [InlineData("greedy", null)]
    [InlineData("greedy_repetition_penalty", "1.1")]
    public void GeneratePrintsTheGreedyIdsOfTransformers(string variant, string? penalty)
    {
        var fx = new ReferenceFixture("qwen2-tiny");
        var generation = fx.Reference.GetProperty("generation");
        int[] prompt = ReferenceFixture.IntArray(generation.GetProperty("prompt_ids"));
        int[] expected = ReferenceFixture.IntArray(generation.GetProperty(variant).GetProperty("new_ids"));
        var args = new List<string> { "check", "generate", "--model", fx.Directory, "--input", WriteBatch([prompt], [prompt.Select(_ => 1).ToArray()]), "--max-new-tokens", "20" };
        if (penalty is not null) args.AddRange(["--repetition-penalty", penalty]);

        var r = CliRunner.Run(args.ToArray());

        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(expected, JsonSerializer.Deserialize<int[]>(r.Stdout));
    }

    [Theory]
    [InlineData("qwen2.5-instruct")]
    [InlineData("qwen3")]
    [InlineData("qwen1.5-chat")]
    public void TokenizeReproducesEveryReferenceEncoding(string model)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixtures("tokenizer", $"{model}.encodings.json")));
        var cases = doc.RootElement.GetProperty("cases").EnumerateArray().ToArray();
        string stdin = string.Join("\n", cases.Select(c => JsonSerializer.Serialize(c.GetProperty("text").GetString())));

        var r = CliRunner.RunWithInput(stdin, "check", "tokenize", "--tokenizer", TestPaths.Fixtures("tokenizers", model));

        Assert.True(r.ExitCode == 0, r.Stderr);
        string[] lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(cases.Length, lines.Length);
        for (int i = 0; i < cases.Length; i++)
        {
            var actual = JsonNode.Parse(lines[i])!;
            string id = cases[i].GetProperty("id").ToString();
            Assert.True(ReferenceFixture.IntArray(cases[i].GetProperty("ids")).SequenceEqual(actual["ids"]!.AsArray().Select(v => v!.GetValue<int>())), $"ids of case {id}");
            Assert.Equal(cases[i].GetProperty("decoded").GetString(), actual["decoded"]!.GetValue<string>());
            Assert.Equal(cases[i].GetProperty("decoded_skip_special_tokens").GetString(), actual["decoded_skip_special_tokens"]!.GetValue<string>());
        }
    }

    [Theory]
    [InlineData("qwen2.5-instruct")]
    [InlineData("qwen3")]
    [InlineData("qwen1.5-chat")]
    public void TemplateRendersAndTokenizesEveryReferenceCase(string model)
    {
        string fixture = File.ReadAllText(TestPaths.Fixtures("chat_template", $"{model}.json"));
        var cases = JsonNode.Parse(fixture)!.AsArray();

        var r = CliRunner.RunWithInput(fixture, "check", "template", "--tokenizer", TestPaths.Fixtures("tokenizers", model));

        Assert.True(r.ExitCode == 0, r.Stderr);
        var results = JsonNode.Parse(r.Stdout)!.AsArray();
        Assert.Equal(cases.Count, results.Count);
        for (int i = 0; i < cases.Count; i++)
        {
            string id = cases[i]!["id"]!.ToString();
            Assert.True(cases[i]!["rendered"]!.GetValue<string>() == results[i]!["rendered"]!.GetValue<string>(), $"rendered text of case {id}");
            var expectedIds = cases[i]!["ids"]!.AsArray().Select(v => v!.GetValue<int>());
            var actualIds = results[i]!["ids"]!.AsArray().Select(v => v!.GetValue<int>());
            Assert.True(expectedIds.SequenceEqual(actualIds), $"ids of case {id}");
        }
    }

    [Fact]
    public void TemplateWritesChatglm3sTokensByIdAndItsNewlinesApartFromTheContent()
    {
        string dir = Templates.GlmTemplateTests.ChatGlm3TokenizerFolder(Path.Combine(_dir, "chatglm3"));
        var tokenizer = SharpTune.Tokenization.Tokenizer.FromDirectory(dir);

        var r = CliRunner.RunWithInput("""[{"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true}]""",
            "check", "template", "--tokenizer", dir, "--template", "chatglm3");

        Assert.True(r.ExitCode == 0, r.Stderr);
        var result = JsonNode.Parse(r.Stdout)!.AsArray().Single()!;
        Assert.Equal("[gMASK]sop<|user|>\nhi<|assistant|>", result["rendered"]!.GetValue<string>());
        int Id(string token) => tokenizer.TokenToId(token)!.Value;
        int[] expected = [Id("[gMASK]"), Id("sop"), Id("<|user|>"), .. tokenizer.Encode("\n"), .. tokenizer.Encode("hi"), Id("<|assistant|>")];
        Assert.Equal(expected, result["ids"]!.AsArray().Select(v => v!.GetValue<int>()));
    }

    [Fact]
    public void ErrorsAreOneLineWithANonZeroExitCode()
    {
        var r = CliRunner.Run("check", "forward", "--model", Path.Combine(_dir, "missing"), "--input", WriteBatch([[1, 2]], [[1, 1]]), "--out", Path.Combine(_dir, "o.safetensors"));

        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("error: model folder", r.Stderr);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void MalformedInputFileIsNamed()
    {
        string path = Path.Combine(_dir, "bad.json");
        File.WriteAllText(path, """{"input_ids": [[1, "x"]]}""");

        var r = CliRunner.Run("check", "forward", "--model", TestPaths.Fixtures("qwen2-small-vocab"), "--input", path, "--out", Path.Combine(_dir, "o.safetensors"));

        Assert.Equal(1, r.ExitCode);
        Assert.Contains("bad.json: 'input_ids' must be a list of lists of integers", r.Stderr);
    }

    [Fact]
    public void AttentionMaskOfAnotherShapeIsNamed()
    {
        var r = CliRunner.Run("check", "generate", "--model", TestPaths.Fixtures("qwen2-small-vocab"), "--input", WriteBatch([[1, 2, 3]], [[1, 1]]), "--max-new-tokens", "1");

        Assert.Equal(1, r.ExitCode);
        Assert.Equal("error: " + Path.Combine(_dir, "batch.json") + ": 'attention_mask' must have the shape of 'input_ids'", r.Stderr.Trim());
    }
}
