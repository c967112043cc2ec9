using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Tests.EndToEnd;

namespace SharpTune.Tests.Board;

/// <summary>The export tab's endpoints over real HTTP: merge the trained adapter into saves/, follow it, and the roots and CSRF rules.</summary>
[Collection(TrainedBoardCollection.Name)]
public sealed class ExportTabTests(TrainedBoardSite site)
{
    /// <summary>Polls a tab's task status until it is no longer running.</summary>
    internal static async Task<JsonObject> FinishedAsync(BoardClient client, string statusPath)
    {
        var task = await client.GetJsonAsync(statusPath);
        for (var deadline = DateTime.UtcNow.AddMinutes(3); task["state"]!.GetValue<string>() == "running" && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(200);
            task = await client.GetJsonAsync(statusPath);
        }
        return task;
    }

    private static JsonObject Export(string exportDir, params string[] adapters) => new()
    {
        ["model"] = "models/tiny",
        ["adapters"] = new JsonArray(adapters.Select(a => (JsonNode)a).ToArray()),
        ["template"] = "qwen",
        ["export_dir"] = exportDir,
        ["export_size"] = 1,
    };

    [Fact]
    public async Task TheMergedExport_LandsInSaves_AndAnswersAsTheAdapterDoes()
    {
        using var client = await site.ClientAsync();
        const string exportDir = "saves/tiny/export/merged";
        var started = await client.PostJsonAsync("/api/export", Export(exportDir, TrainedBoardSite.AdapterRun));
        Assert.Equal("export", started["kind"]!.GetValue<string>());
        var task = await FinishedAsync(client, "/api/export/status");
        Assert.True(task["state"]!.GetValue<string>() == "finished", task.ToJsonString());
        Assert.Equal(exportDir, task["result"]!["export_dir"]!.GetValue<string>());
        var files = task["result"]!["files"]!.AsArray().Select(f => f!.GetValue<string>()).ToList();
        Assert.Contains("model.safetensors", files);
        Assert.Contains("config.json", files);
        Assert.Contains("tokenizer.json", files);
        Assert.Equal(task["progress"]!["total"]!.GetValue<int>(), task["progress"]!["done"]!.GetValue<int>());
        Assert.True(task["progress"]!["total"]!.GetValue<int>() > 0);
        foreach (string file in files) Assert.True(File.Exists(Path.Combine(site.PathOf(exportDir), file)), file);

        // The merged folder generates what the base with the adapter applied unmerged generates: the trained identity.
        string question = TrainedBoardSite.Identity[0].Question;
        Assert.Equal(TinyModelFixture.GreedyIds(site.PathOf("models/tiny"), question, site.PathOf(TrainedBoardSite.AdapterRun)),
            TinyModelFixture.GreedyIds(site.PathOf(exportDir), question));

        // The same export in float32: every tensor widened from the bf16 export, and config.json says so.
        var f32 = Export("saves/tiny/export/merged-f32", TrainedBoardSite.AdapterRun);
        f32["dtype"] = "float32";
        await client.PostJsonAsync("/api/export", f32);
        Assert.Equal("finished", (await FinishedAsync(client, "/api/export/status"))["state"]!.GetValue<string>());
        using var bf16 = SafetensorsCheckpoint.OpenDirectory(site.PathOf(exportDir));
        using var widened = SafetensorsCheckpoint.OpenDirectory(site.PathOf("saves/tiny/export/merged-f32"));
        foreach (string name in bf16.Names)
        {
            Assert.Equal(DType.F32, widened.Get(name).DType);
            Assert.Equal(bf16.ReadFloat32(name), widened.ReadFloat32(name));
        }
        Assert.Equal("float32", JsonNode.Parse(File.ReadAllText(site.PathOf("saves/tiny/export/merged-f32/config.json")))!["torch_dtype"]!.GetValue<string>());
    }

    [Fact]
    public async Task AnExportOutsideSaves_OrABadValue_IsRefused_AndNothingIsWritten()
    {
        using var client = await site.ClientAsync();
        foreach (string exportDir in new[] { Path.Combine(Path.GetTempPath(), "sharptune-board-export"), "models/tiny-merged", "saves/../../escape" })
        {
            var (status, error) = await BoardClient.ErrorOf(await client.PostAsync("/api/export", Export(exportDir, TrainedBoardSite.AdapterRun)));
            Assert.Equal(HttpStatusCode.Forbidden, status);
            Assert.Contains("is outside the folders this board may use", error);
        }
        Assert.False(Directory.Exists(site.PathOf("models/tiny-merged")));

        var int8 = Export("saves/tiny/export/int8", TrainedBoardSite.AdapterRun);
        int8["dtype"] = "int8";
        var (badDtype, dtypeError) = await BoardClient.ErrorOf(await client.PostAsync("/api/export", int8));
        Assert.Equal(HttpStatusCode.BadRequest, badDtype);
        Assert.Contains("dtype", dtypeError);

        var zero = Export("saves/tiny/export/zero", TrainedBoardSite.AdapterRun);
        zero["export_size"] = 0;
        var (badSize, sizeError) = await BoardClient.ErrorOf(await client.PostAsync("/api/export", zero));
        Assert.Equal(HttpStatusCode.BadRequest, badSize);
        Assert.Contains("export_size", sizeError);

        // A value the config rules refuse is named as `sharptune export` names it.
        var wrongTemplate = Export("saves/tiny/export/wrong", TrainedBoardSite.AdapterRun);
        wrongTemplate["template"] = "no-such-template";
        var (badTemplate, templateError) = await BoardClient.ErrorOf(await client.PostAsync("/api/export", wrongTemplate));
        Assert.Equal(HttpStatusCode.BadRequest, badTemplate);
        Assert.Contains("template: 'no-such-template' is not a SharpTune template", templateError);
        Assert.False(Directory.Exists(site.PathOf("saves/tiny/export/wrong")));

        // A failure in the workflow itself (a folder of other files, which an export would replace) ends the task as
        // failed with the workflow's message, and the folder is kept as it was.
        string foreign = site.PathOf("saves/tiny/export/notes");
        Directory.CreateDirectory(foreign);
        File.WriteAllText(Path.Combine(foreign, "mine.txt"), "keep me");
        await client.PostJsonAsync("/api/export", Export("saves/tiny/export/notes", TrainedBoardSite.AdapterRun));
        var failed = await FinishedAsync(client, "/api/export/status");
        Assert.Equal("failed", failed["state"]!.GetValue<string>());
        Assert.Contains("holds mine.txt, which an export does not write", failed["error"]!.GetValue<string>());
        Assert.Equal(["mine.txt"], Directory.GetFiles(foreign).Select(Path.GetFileName));

        var bare = new HttpRequestMessage(HttpMethod.Post, "/api/export") { Content = new StringContent(Export("saves/x").ToJsonString(), Encoding.UTF8, "application/json") };
        Assert.Equal(HttpStatusCode.Forbidden, (await BoardClient.ErrorOf(await client.Http.SendAsync(bare))).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await BoardClient.ErrorOf(await client.Http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/api/export/cancel")))).Status);
        Assert.False(Directory.Exists(site.PathOf("saves/x")));
    }
}
