using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.Data;

/// <summary>`sharptune check preprocess` through the real command line.</summary>
[Collection(CliCollection.Name)]
public sealed class CheckPreprocessCommandTests
{
    [Fact]
    public void EveryCaseOfAFixtureFileMatches()
    {
        var fx = SftPreprocessFixture.Get("chatml.json");
        var input = new JsonArray(fx.Cases.Select(c => (JsonNode)new JsonObject
        {
            ["record"] = JsonNode.Parse(c.GetProperty("record").GetRawText()),
            ["dataset_info"] = JsonNode.Parse(c.GetProperty("dataset_info").GetRawText()),
            ["settings"] = JsonNode.Parse(c.GetProperty("settings").GetRawText()),
        }).ToArray());

        var r = CliRunner.RunWithInput(input.ToJsonString(), "check", "preprocess", "--tokenizer", fx.TokenizerDir);

        Assert.True(r.ExitCode == 0, r.Stderr);
        var results = JsonDocument.Parse(r.Stdout).RootElement.EnumerateArray().ToList();
        Assert.Equal(fx.Cases.Count, results.Count);
        for (int i = 0; i < results.Count; i++)
            foreach (string key in new[] { "input_ids", "attention_mask", "labels" })
                Assert.Equal(SftPreprocessFixture.Ints(fx.Cases[i].GetProperty(key)), SftPreprocessFixture.Ints(results[i].GetProperty(key)));
    }

    [Fact]
    public void AMalformedRecordIsNamedByItsCase()
    {
        var fx = SftPreprocessFixture.Get("qwen.json");
        const string input = """
            [{"record": {"instruction": "a", "output": "b"}, "dataset_info": {"file_name": "x.json"}, "settings": {"template": "qwen", "cutoff_len": 64}},
             {"record": {"instruction": "a"}, "dataset_info": {"file_name": "x.json"}, "settings": {"template": "qwen", "cutoff_len": 64}}]
            """;

        var r = CliRunner.RunWithInput(input, "check", "preprocess", "--tokenizer", fx.TokenizerDir);

        Assert.Equal(1, r.ExitCode);
        Assert.Equal("error: case 1: 'output' is missing", r.Stderr.Trim());
        Assert.Equal("", r.Stdout);
    }
}
