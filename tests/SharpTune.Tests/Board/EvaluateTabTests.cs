using System.Net;
using System.Text.Json.Nodes;
using SharpTune.Evaluation.Metrics;

namespace SharpTune.Tests.Board;

/// <summary>The evaluate tab's reading endpoints over real HTTP: a prediction run's metrics and its rows, each scored.</summary>
[Collection(TrainedBoardCollection.Name)]
public sealed class EvaluateTabTests(TrainedBoardSite site)
{
    private static string Predictions(string run, int offset, int limit) =>
        $"/api/evaluate/predictions?run={Uri.EscapeDataString(run)}&offset={offset}&limit={limit}";

    internal static JsonObject Start(bool predict) => new()
    {
        ["model"] = "models/tiny",
        ["finetuning_type"] = "lora",
        ["adapters"] = new JsonArray((JsonNode)TrainedBoardSite.AdapterRun),
        ["template"] = "qwen",
        ["datasets"] = new JsonArray((JsonNode)"identity"),
        ["max_samples"] = TrainedBoardSite.Records,
        ["cutoff_len"] = 64,
        ["per_device_eval_batch_size"] = 2,
        ["max_new_tokens"] = 40,
        ["predict"] = predict,
    };

    /// <summary>Polls the run queue's list until the run has ended; returns its entry.</summary>
    internal static async Task<JsonObject> RunEndedAsync(BoardClient client, string id)
    {
        for (var deadline = DateTime.UtcNow.AddMinutes(3); ; await Task.Delay(200))
        {
            var run = (await client.GetJsonAsync("/api/runs"))["runs"]!.AsArray().Single(r => r!["id"]!.GetValue<string>() == id)!.AsObject();
            if (run["state"]!.GetValue<string>() is not ("queued" or "running") || DateTime.UtcNow > deadline) return run;
        }
    }

    [Fact]
    public async Task EvaluationAndPredictionRuns_GoThroughTheRunQueue_AndTheirResultsShow()
    {
        using var client = await site.ClientAsync();
        var queued = await client.PostJsonAsync("/api/evaluate/start", Start(predict: true));
        string predictRun = queued["id"]!.GetValue<string>();
        Assert.StartsWith("saves/tiny/lora/eval_", predictRun);
        var ended = await RunEndedAsync(client, predictRun);
        Assert.True(ended["state"]!.GetValue<string>() == "finished", ended.ToJsonString());
        string yaml = File.ReadAllText(Path.Combine(site.PathOf(predictRun), "training_args.yaml"));
        Assert.Contains("do_predict: true", yaml);
        Assert.Contains("do_train: false", yaml);
        Assert.Contains("eval_dataset: \"identity\"", yaml);
        var page = await client.GetJsonAsync(Predictions(predictRun, 0, 20));
        Assert.Equal(TrainedBoardSite.Identity.Select(i => i.Answer + "\n"), page["rows"]!.AsArray().Select(r => r!["reference"]!.GetValue<string>()));
        Assert.Equal(TrainedBoardSite.Identity.Select(i => i.Answer), page["rows"]!.AsArray().Select(r => r!["prediction"]!.GetValue<string>()));

        var evaluation = await client.PostJsonAsync("/api/evaluate/start", Start(predict: false));
        string evalRun = evaluation["id"]!.GetValue<string>();
        Assert.Equal("finished", (await RunEndedAsync(client, evalRun))["state"]!.GetValue<string>());
        var results = await client.GetJsonAsync($"/api/evaluate/results?run={Uri.EscapeDataString(evalRun)}");
        Assert.True(results["metrics"]!["eval_results.json"]!["eval_loss"]!.GetValue<double>() > 0);
        Assert.Null(results["metrics"]!["predict_results.json"]);
        var runs = (await client.GetJsonAsync("/api/evaluate/runs"))["runs"]!.AsArray().Select(r => r!.GetValue<string>()).ToList();
        Assert.Contains(evalRun, runs);
        Assert.Contains(predictRun, runs);
    }

    [Fact]
    public async Task ARunRequest_WithABadField_OutsideTheRoots_OrWithoutTheCsrfHeader_IsRefused()
    {
        using var client = await site.ClientAsync();
        var noDatasets = Start(predict: true);
        noDatasets["datasets"] = new JsonArray();
        var badBatch = Start(predict: true);
        badBatch["per_device_eval_batch_size"] = 0;
        var badMethod = Start(predict: true);
        badMethod["finetuning_type"] = "magic";
        foreach (var (body, field) in new[] { (noDatasets, "datasets"), (badBatch, "per_device_eval_batch_size"), (badMethod, "finetuning_type") })
        {
            var (status, error) = await BoardClient.ErrorOf(await client.PostAsync("/api/evaluate/start", body));
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Contains(field, error);
        }
        var outside = Start(predict: true);
        outside["adapters"] = new JsonArray((JsonNode)Path.GetTempPath());
        Assert.Equal(HttpStatusCode.Forbidden, (await BoardClient.ErrorOf(await client.PostAsync("/api/evaluate/start", outside))).Status);
        var bare = new HttpRequestMessage(HttpMethod.Post, "/api/evaluate/start") { Content = new StringContent(Start(true).ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
        var (csrf, csrfError) = await BoardClient.ErrorOf(await client.Http.SendAsync(bare));
        Assert.Equal(HttpStatusCode.Forbidden, csrf);
        Assert.Contains("X-CSRF-Token", csrfError);
    }

    [Fact]
    public async Task ThePredictionRows_AverageToTheRunsOwnMetrics()
    {
        using var client = await site.ClientAsync();
        var runs = (await client.GetJsonAsync("/api/evaluate/runs"))["runs"]!.AsArray().Select(r => r!.GetValue<string>()).ToList();
        Assert.Contains(TrainedBoardSite.PredictRun, runs);
        Assert.DoesNotContain(TrainedBoardSite.AdapterRun, runs);
        var results = await client.GetJsonAsync($"/api/evaluate/results?run={Uri.EscapeDataString(TrainedBoardSite.PredictRun)}");
        var metrics = results["metrics"]!["predict_results.json"]!.AsObject();
        Assert.Null(results["metrics"]!["eval_results.json"]);

        var page = await client.GetJsonAsync(Predictions(TrainedBoardSite.PredictRun, 0, 20));
        Assert.Equal(TrainedBoardSite.Records, page["total"]!.GetValue<int>());
        var rows = page["rows"]!.AsArray().Select(r => r!.AsObject()).ToList();
        Assert.Equal(TrainedBoardSite.Records, rows.Count);
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.Equal(i + 1, rows[i]["line"]!.GetValue<int>());
            Assert.Contains(TrainedBoardSite.Identity[i].Question, rows[i]["prompt"]!.GetValue<string>());
            Assert.Equal(TrainedBoardSite.Identity[i].Answer + "\n", rows[i]["reference"]!.GetValue<string>());
        }
        // The prediction run averaged its own scores into predict_results.json; the rows' scores average to the same.
        foreach (string key in new[] { GenerationMetrics.Bleu4Key, GenerationMetrics.Rouge1Key, GenerationMetrics.Rouge2Key, GenerationMetrics.RougeLKey })
            Assert.Equal(metrics["predict_" + key]!.GetValue<double>(), rows.Average(r => r[key]!.GetValue<double>()), 1e-9);

        var second = await client.GetJsonAsync(Predictions(TrainedBoardSite.PredictRun, 1, 1));
        Assert.Equal(TrainedBoardSite.Records, second["total"]!.GetValue<int>());
        Assert.Equal(rows[1].ToJsonString(), second["rows"]![0]!.ToJsonString());
    }

    [Fact]
    public async Task ABadPage_AMissingFile_AMalformedLine_OrAFolderOutsideSaves_IsRefused()
    {
        using var client = await site.ClientAsync();
        foreach (var (path, status, message) in new[]
        {
            (Predictions(TrainedBoardSite.PredictRun, 0, 0), HttpStatusCode.BadRequest, "limit must be between 1 and 100"),
            (Predictions(TrainedBoardSite.PredictRun, -1, 5), HttpStatusCode.BadRequest, "offset"),
            (Predictions(TrainedBoardSite.AdapterRun, 0, 5), HttpStatusCode.BadRequest, "generated_predictions.jsonl does not exist"),
            (Predictions("models/tiny", 0, 5), HttpStatusCode.Forbidden, "is outside the folders this board may use"),
            (Predictions("saves/../..", 0, 5), HttpStatusCode.Forbidden, "is outside the folders this board may use"),
            ($"/api/evaluate/results?run={Uri.EscapeDataString(Path.GetTempPath())}", HttpStatusCode.Forbidden, "is outside the folders this board may use"),
        })
        {
            var (got, error) = await BoardClient.ErrorOf(await client.Http.GetAsync(path));
            Assert.Equal(status, got);
            Assert.Contains(message, error);
        }

        string broken = site.PathOf("saves/tiny/lora/broken");
        Directory.CreateDirectory(broken);
        File.WriteAllLines(Path.Combine(broken, "generated_predictions.jsonl"), ["""{"prompt": "p", "predict": "a", "label": "a"}""", """{"prompt": "p", "predict": 3, "label": "a"}"""]);
        var (badLine, lineError) = await BoardClient.ErrorOf(await client.Http.GetAsync(Predictions("saves/tiny/lora/broken", 0, 5)));
        Assert.Equal(HttpStatusCode.BadRequest, badLine);
        Assert.Contains("saves/tiny/lora/broken/generated_predictions.jsonl, line 2: field 'predict' must be a string", lineError);
    }
}
