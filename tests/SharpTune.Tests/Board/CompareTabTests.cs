using System.Net;
using System.Text.Json.Nodes;

namespace SharpTune.Tests.Board;

/// <summary>The compare tab's endpoints over real HTTP: typed questions and dataset records, base beside the trained adapter.</summary>
[Collection(TrainedBoardCollection.Name)]
public sealed class CompareTabTests(TrainedBoardSite site)
{
    private static JsonObject Compare(params (string Key, JsonNode? Value)[] fields)
    {
        var body = new JsonObject
        {
            ["model"] = "models/tiny",
            ["adapters"] = new JsonArray((JsonNode)TrainedBoardSite.AdapterRun),
            ["template"] = "qwen",
            ["max_new_tokens"] = 40,
        };
        foreach (var (key, value) in fields) body[key] = value;
        return body;
    }

    [Fact]
    public async Task TypedQuestions_GetTheBaseAndTheAdapterSideBySide_WithTheReportInSaves()
    {
        using var client = await site.ClientAsync();
        var questions = TrainedBoardSite.Identity.Select(i => i.Question).ToArray();
        await client.PostJsonAsync("/api/compare", Compare(("questions", new JsonArray(questions.Select(q => (JsonNode)q).ToArray()))));
        var task = await ExportTabTests.FinishedAsync(client, "/api/compare/status");
        Assert.True(task["state"]!.GetValue<string>() == "finished", task.ToJsonString());
        var result = task["result"]!;
        Assert.Equal(questions, result["questions"]!.AsArray().Select(q => q!["question"]!.GetValue<string>()));
        Assert.All(result["questions"]!.AsArray(), q => Assert.Null(q!["reference"]));
        var columns = result["columns"]!.AsArray();
        Assert.Equal(["base", "train_identity"], columns.Select(c => c!["name"]!.GetValue<string>()));
        var trained = columns[1]!["answers"]!.AsArray().Select(a => a!["text"]!.GetValue<string>()).ToList();
        var untrained = columns[0]!["answers"]!.AsArray().Select(a => a!["text"]!.GetValue<string>()).ToList();
        for (int i = 0; i < questions.Length; i++)
        {
            Assert.Equal(TrainedBoardSite.Identity[i].Answer, trained[i]);
            Assert.NotEqual(TrainedBoardSite.Identity[i].Answer, untrained[i]);
        }
        string markdown = result["markdown"]!.GetValue<string>();
        Assert.StartsWith("saves/tiny/compare/compare_", markdown);
        Assert.Contains(TrainedBoardSite.Identity[0].Answer.Replace("!", "\\!"), File.ReadAllText(site.PathOf(markdown)));
        Assert.True(File.Exists(site.PathOf(result["html"]!.GetValue<string>())));
    }

    [Fact]
    public async Task DatasetRecords_BringTheirReferences_AndScores()
    {
        using var client = await site.ClientAsync();
        await client.PostJsonAsync("/api/compare", Compare(("datasets", new JsonArray((JsonNode)"identity")), ("max_samples", 2)));
        var task = await ExportTabTests.FinishedAsync(client, "/api/compare/status");
        Assert.True(task["state"]!.GetValue<string>() == "finished", task.ToJsonString());
        var result = task["result"]!;
        Assert.Equal(TrainedBoardSite.Identity.Take(2).Select(i => i.Answer + "\n"), result["questions"]!.AsArray().Select(q => q!["reference"]!.GetValue<string>()));
        var trained = result["columns"]![1]!;
        Assert.True(trained["scores"]!["bleu-4"]!.GetValue<double>() > 80, trained.ToJsonString());
        Assert.True(result["columns"]![0]!["scores"]!["bleu-4"]!.GetValue<double>() < 20);
        Assert.All(trained["answers"]!.AsArray(), a => Assert.NotNull(a!["scores"]!["rouge-l"]));
    }

    [Fact]
    public async Task AComparisonNeedsOneSourceOfQuestions_AndKeepsToTheRoots()
    {
        using var client = await site.ClientAsync();
        foreach (var body in new[]
        {
            Compare(),
            Compare(("questions", new JsonArray((JsonNode)"hi")), ("datasets", new JsonArray((JsonNode)"identity"))),
            Compare(("questions", new JsonArray((JsonNode)"  "))),
            Compare(("questions", new JsonArray((JsonNode)"hi")), ("max_new_tokens", 0)),
        })
        {
            var (status, _) = await BoardClient.ErrorOf(await client.PostAsync("/api/compare", body));
            Assert.Equal(HttpStatusCode.BadRequest, status);
        }
        var outside = Compare(("questions", new JsonArray((JsonNode)"hi")));
        outside["adapters"] = new JsonArray((JsonNode)Path.GetTempPath());
        var (forbidden, error) = await BoardClient.ErrorOf(await client.PostAsync("/api/compare", outside));
        Assert.Equal(HttpStatusCode.Forbidden, forbidden);
        Assert.Contains("is outside the folders this board may use", error);

        // A dataset whose file lies outside data/ (dataset_info.json may name any path) is not read.
        string info = site.PathOf("data/dataset_info.json");
        var entries = JsonNode.Parse(File.ReadAllText(info))!.AsObject();
        entries["escape"] = new JsonObject { ["file_name"] = "../models/tiny/config.json" };
        File.WriteAllText(info, entries.ToJsonString());
        await client.PostJsonAsync("/api/compare", Compare(("datasets", new JsonArray((JsonNode)"escape"))));
        var task = await ExportTabTests.FinishedAsync(client, "/api/compare/status");
        Assert.Equal("failed", task["state"]!.GetValue<string>());
        Assert.Contains("outside the dataset folder", task["error"]!.GetValue<string>());
    }
}
