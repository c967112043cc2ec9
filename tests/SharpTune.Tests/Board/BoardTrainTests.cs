using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Board;
using SharpTune.Board.Runs;
using SharpTune.Board.Train;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Board;

/// <summary>The Train tab's endpoints over real HTTP: datasets and their errors, the preview, the command, saved arguments.</summary>
public sealed class BoardTrainTests(BoardSite site) : IClassFixture<BoardSite>
{
    [Fact]
    public async Task Datasets_AreListedForTheStage_WithWhyOthersAreNot()
    {
        using var client = await site.ClientAsync();
        Assert.Equal("data", (await client.GetJsonAsync("/api/dataset-dirs"))["dirs"]![0]!.GetValue<string>());
        var sft = await client.GetJsonAsync("/api/datasets?dir=data&stage=sft");
        Assert.Equal("data/dataset_info.json", sft["file"]!.GetValue<string>());
        var byName = sft["datasets"]!.AsArray().ToDictionary(d => d!["name"]!.GetValue<string>(), d => d!.AsObject());
        Assert.True(byName["identity"]["usable"]!.GetValue<bool>());
        Assert.False(byName["identity_dpo"]["usable"]!.GetValue<bool>());
        Assert.Contains("ranking: true", byName["identity_dpo"]["problem"]!.GetValue<string>());
        var dpo = await client.GetJsonAsync("/api/datasets?dir=data&stage=dpo");
        Assert.True(dpo["datasets"]!.AsArray().Single(d => d!["name"]!.GetValue<string>() == "identity_dpo")!["usable"]!.GetValue<bool>());
    }

    [Fact]
    public async Task AMissingOrMalformedDatasetInfo_IsAnErrorNamingTheFileAndTheProblem()
    {
        using var client = await site.ClientAsync();
        string empty = Directory.CreateDirectory(Path.Combine(site.Root, "data", "empty")).FullName;
        string broken = Directory.CreateDirectory(Path.Combine(site.Root, "data", "broken")).FullName;
        File.WriteAllText(Path.Combine(broken, "dataset_info.json"), "{\n  \"identity\": { \"file_name\": \"identity.json\" },\n  oops\n}");
        try
        {
            await CheckAsync();
        }
        finally
        {
            Directory.Delete(empty);
            Directory.Delete(broken, recursive: true);
        }

        async Task CheckAsync()
        {
            var (status, error) = await BoardClient.ErrorOf(await client.Http.GetAsync("/api/datasets?dir=data/empty&stage=sft"));
            Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
            Assert.Equal("data/empty/dataset_info.json does not exist: a dataset folder lists its datasets there", error);
            (status, error) = await BoardClient.ErrorOf(await client.Http.GetAsync("/api/datasets?dir=data/broken&stage=sft"));
            Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
            Assert.StartsWith(Path.Combine(broken, "dataset_info.json") + ": invalid JSON at line 3", error);
            Assert.Contains("data/broken", (await client.GetJsonAsync("/api/dataset-dirs"))["dirs"]!.ToJsonString());
        }
    }

    [Fact]
    public async Task ThePreview_GivesEachTokenWithItsLabel_AsTrainingEncodesTheRecord()
    {
        using var client = await site.ClientAsync();
        var reply = await client.PostJsonAsync("/api/train/preview", new JsonObject
        {
            ["model"] = "models/tiny", ["template"] = "auto", ["dataset_dir"] = "data", ["dataset"] = "identity",
            ["stage"] = "sft", ["cutoff_len"] = "64", ["page"] = 1, ["page_size"] = 2,
        });
        Assert.Equal(91, reply["total"]!.GetValue<int>());
        Assert.Equal("qwen", reply["template"]!.GetValue<string>());
        var records = reply["records"]!.AsArray();
        Assert.Equal([2, 3], records.Select(r => r!["index"]!.GetValue<int>()));

        // The reference: the library's own processor on the same record.
        string modelDir = Path.Combine(site.Root, "models", "tiny");
        var tokenizer = Tokenizer.FromDirectory(modelDir);
        var processor = new SupervisedProcessor(tokenizer, ChatTemplates.ForModel("auto", modelDir, tokenizer), 64, trainOnPrompt: false, maskHistory: false);
        var registry = DatasetRegistry.Load(Path.Combine(site.Root, "data"));
        var expected = DatasetPreview.Page(registry, "identity", "sft", processor, 2, 1).Records[0].Examples[0];
        var tokens = records[0]!["examples"]!.AsArray().Single()!.AsArray();
        Assert.Equal(expected.InputIds.Length, tokens.Count);
        Assert.Equal(expected.Labels.Select(l => l != SupervisedCollator.IgnoreIndex), tokens.Select(t => t!["trained"]!.GetValue<bool>()));
        Assert.Equal(tokenizer.Decode(expected.InputIds), string.Concat(tokens.Select(t => t!["text"]!.GetValue<string>())));
        Assert.Contains(tokens, t => !t!["trained"]!.GetValue<bool>());
        Assert.Contains(tokens, t => t!["trained"]!.GetValue<bool>());
        Assert.Contains("Who are you?", string.Concat(tokens.Where(t => !t!["trained"]!.GetValue<bool>()).Select(t => t!["text"]!.GetValue<string>())));

        var (status, error) = await BoardClient.ErrorOf(await client.PostAsync("/api/train/preview", new JsonObject
            { ["model"] = "models/tiny", ["dataset_dir"] = "data", ["dataset"] = "nope" }));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("dataset 'nope' is not defined in", error);
    }

    public static JsonObject Form(int maxSteps, string? outputDir = null, string dataset = "identity") => new()
    {
        ["model"] = "models/tiny", ["finetuning_type"] = "lora", ["template"] = "qwen", ["stage"] = "sft",
        ["dataset_dir"] = "data", ["datasets"] = new JsonArray(dataset), ["output_dir"] = outputDir,
        ["fields"] = new JsonObject
        {
            ["max_steps"] = maxSteps, ["logging_steps"] = "1", ["save_steps"] = 1000, ["cutoff_len"] = 64, ["max_samples"] = 16,
            ["per_device_train_batch_size"] = 4, ["gradient_accumulation_steps"] = 1, ["lora_rank"] = 4, ["learning_rate"] = "0.01",
        },
    };

    [Fact]
    public async Task TheCommandPreview_IsTheYamlTrainingReads_AndABadFieldIsNamed()
    {
        using var client = await site.ClientAsync();
        var reply = await client.PostJsonAsync("/api/train/command", Form(7));
        string output = reply["output_dir"]!.GetValue<string>();
        Assert.Matches(@"^saves/tiny/lora/train_\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d$", output);
        Assert.Equal($"sharptune train {output}/training_args.yaml", reply["command"]!.GetValue<string>());
        var config = SftConfig.Parse(reply["yaml"]!.GetValue<string>(), [], site.Root);
        Assert.Equal(7, config.Training.MaxSteps);
        Assert.Equal(0.01, config.Training.LearningRate);
        Assert.Equal(4, config.Finetuning.LoraRank);
        Assert.Equal(3.0, config.Training.NumTrainEpochs);
        Assert.Equal(Path.Combine(site.Root, "models", "tiny"), config.Model.ModelNameOrPath);

        var bad = Form(7);
        bad["fields"]!["learning_rate"] = "fast";
        var (status, error) = await BoardClient.ErrorOf(await client.PostAsync("/api/train/command", bad));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("field 'learning_rate': expected a number, got 'fast'", error);
        bad = Form(7);
        bad["fields"]!["lora_rank"] = 0;
        Assert.Contains("lora_rank", (await BoardClient.ErrorOf(await client.PostAsync("/api/train/command", bad))).Error);
        Assert.Equal(HttpStatusCode.Forbidden, (await BoardClient.ErrorOf(await client.PostAsync("/api/train/command", Form(7, outputDir: "/tmp/elsewhere")))).Status);
    }

    [Fact]
    public async Task SavedArguments_LoadBack_AndOnlyUnderTheRoots()
    {
        using var client = await site.ClientAsync();
        var saved = await client.PostJsonAsync("/api/train/save", new JsonObject { ["path"] = "saves/configs/mine.yaml", ["form"] = Form(9) });
        Assert.Equal("saves/configs/mine.yaml", saved["path"]!.GetValue<string>());
        var values = (await client.PostJsonAsync("/api/train/load", new JsonObject { ["path"] = "saves/configs/mine.yaml" }))["values"]!.AsObject();
        Assert.Equal("9", values["max_steps"]!.GetValue<string>());
        Assert.Equal("lora", values["finetuning_type"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.Forbidden, (await BoardClient.ErrorOf(await client.PostAsync("/api/train/save", new JsonObject { ["path"] = "../x.yaml", ["form"] = Form(9) }))).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await BoardClient.ErrorOf(await client.PostAsync("/api/train/load", new JsonObject { ["path"] = "/etc/passwd" }))).Status);
    }

    [Fact]
    public async Task TheTemplateCheck_WarnsAsTrainingWould()
    {
        using var client = await site.ClientAsync();
        var foreign = await client.GetJsonAsync("/api/template-check?model=models/tiny&template=llama3");
        Assert.Null(foreign["template"]);
        Assert.Contains("is not a single token of this model's tokenizer", foreign["warning"]!.GetValue<string>());
        var otherFamily = await client.GetJsonAsync("/api/template-check?model=models/tiny&template=qwen3");
        Assert.Contains("chat_template is the qwen template's, not qwen3's", otherFamily["warning"]!.GetValue<string>());
        Assert.Null((await client.GetJsonAsync("/api/template-check?model=models/tiny&template=qwen"))["warning"]);
    }

    [Fact]
    public void EveryField_HasAnEnglishAndAChineseLabel()
    {
        var i18n = new I18n(new StaticAssets());
        foreach (string language in I18n.Languages)
            Assert.All(TrainForm.Fields, f => Assert.True(i18n.Dictionary(language).ContainsKey($"train.field.{f.Key}"), $"{language}: train.field.{f.Key}"));
    }
}

/// <summary>
/// Runs over real HTTP: `sharptune train` children queued one at a time, their live event stream, abort, and a
/// restarted board finding them; a run started from the command line into saves/ is listed too.
/// </summary>
[Collection(Cli.CliCollection.Name)]
public sealed class BoardRunTests(BoardSite site) : IClassFixture<BoardSite>
{
    [Fact]
    public async Task RunsQueue_StreamTheirLog_AbortWhileQueuedOrRunning_AndFinish()
    {
        using var client = await site.ClientAsync();
        var first = await client.PostJsonAsync("/api/runs", BoardTrainTests.Form(30, "saves/tiny/lora/first"));
        var second = await client.PostJsonAsync("/api/runs", BoardTrainTests.Form(400, "saves/tiny/lora/second"));
        var third = await client.PostJsonAsync("/api/runs", BoardTrainTests.Form(5, "saves/tiny/lora/third"));
        Assert.Equal("queued", second["state"]!.GetValue<string>());

        // The third is aborted before it starts; the first streams from its first logged step and finishes.
        var aborted = await client.PostJsonAsync("/api/runs/abort", new JsonObject { ["run"] = "saves/tiny/lora/third" });
        Assert.Equal("aborted", aborted["state"]!.GetValue<string>());
        var events = await ReadEventsAsync(client, "saves/tiny/lora/first", TimeSpan.FromMinutes(2));
        var steps = events.Where(e => e.Name == "log").Select(e => JsonNode.Parse(e.Data)!["current_steps"]!.GetValue<int>()).ToList();
        Assert.Equal(Enumerable.Range(1, 30), steps.Where(s => s > 0).Distinct());
        Assert.Equal("end", events[^1].Name);
        var finalState = JsonNode.Parse(events.Last(e => e.Name == "state").Data)!;
        Assert.Equal("finished", finalState["state"]!.GetValue<string>());
        Assert.Contains(events, e => e.Name == "output" && e.Data.Contains("[sharptune]"));
        Assert.True(File.Exists(Path.Combine(site.Root, "saves/tiny/lora/first/adapter_config.json")));
        (await client.Http.GetAsync("/api/runs/file?run=saves/tiny/lora/first&name=training_loss.png")).EnsureSuccessStatusCode();

        // The second starts after the first; aborted while it runs, it stops at a step with a checkpoint.
        await WaitForStateAsync(client, "saves/tiny/lora/second", "running");
        await WaitAsync(() => File.Exists(Path.Combine(site.Root, "saves/tiny/lora/second/trainer_log.jsonl")), TimeSpan.FromMinutes(1));
        await client.PostJsonAsync("/api/runs/abort", new JsonObject { ["run"] = "saves/tiny/lora/second" });
        var stopped = await WaitForStateAsync(client, "saves/tiny/lora/second", "aborted");
        Assert.Equal(130, stopped["exit_code"]!.GetValue<int>());
        Assert.NotEmpty(Directory.GetDirectories(Path.Combine(site.Root, "saves/tiny/lora/second"), "checkpoint-*"));
        Assert.Equal(HttpStatusCode.Conflict, (await BoardClient.ErrorOf(await client.PostAsync("/api/runs/abort", new JsonObject { ["run"] = "saves/tiny/lora/second" }))).Status);

        // A failing run shows its error line.
        var failing = BoardTrainTests.Form(5, "saves/tiny/lora/failing", dataset: "alpaca_en_demo");
        await client.PostJsonAsync("/api/runs", failing);
        var failed = await WaitForStateAsync(client, "saves/tiny/lora/failing", "failed");
        Assert.StartsWith("error: ", failed["error"]!.GetValue<string>());
        Assert.Contains("alpaca_en_demo", failed["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task ANewLogLine_ReachesTheStreamWithinASecond_AndARestartedBoardFindsTheRuns()
    {
        // A run folder as a board leaves it while the run is alive (this test process stands for the run).
        string dir = Path.Combine(site.Root, "saves", "tiny", "lora", "watched");
        Directory.CreateDirectory(dir);
        new RunRecord { State = RunState.Running, Pid = Environment.ProcessId, QueuedAt = DateTimeOffset.Now, StartedAt = DateTimeOffset.Now }.Write(dir);
        string log = Path.Combine(dir, "trainer_log.jsonl");
        File.WriteAllText(log, """{"current_steps": 1, "total_steps": 3, "loss": 2.5}""" + "\n");

        using var client = await site.ClientAsync();
        using var stream = await client.Http.GetStreamAsync("/api/runs/events?run=saves/tiny/lora/watched");
        using var reader = new StreamReader(stream);
        Assert.Contains("\"current_steps\": 1", await NextEventAsync(reader, "log"));
        var clock = Stopwatch.StartNew();
        File.AppendAllText(log, """{"current_steps": 2, "total_steps": 3, "loss": 2.1}""" + "\n");
        Assert.Contains("\"current_steps\": 2", await NextEventAsync(reader, "log"));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"the line took {clock.ElapsedMilliseconds} ms to reach the page");

        // A command-line run in saves/ is listed; a board started on the same folder lists both.
        string cli = Path.Combine(site.Root, "saves", "tiny", "lora", "from_cli");
        Directory.CreateDirectory(cli);
        File.WriteAllText(Path.Combine(cli, "trainer_log.jsonl"), """{"current_steps": 1, "total_steps": 1, "loss": 2.5}""" + "\n");
        await using var restarted = await BoardServer.StartAsync(site.Server.Options with { Port = 0 });
        using var other = new BoardClient(restarted.Address);
        var runs = (await other.GetJsonAsync("/api/runs"))["runs"]!.AsArray().ToDictionary(r => r!["id"]!.GetValue<string>(), r => r!.AsObject());
        Assert.Equal("running", runs["saves/tiny/lora/watched"]["state"]!.GetValue<string>());
        Assert.Equal("command line", runs["saves/tiny/lora/from_cli"]["source"]!.GetValue<string>());
        Assert.Equal("external", runs["saves/tiny/lora/from_cli"]["state"]!.GetValue<string>());
    }

    private static async Task<string> NextEventAsync(StreamReader reader, string name)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        string? current = null;
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) current = line["event: ".Length..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && current == name) return line["data: ".Length..];
        }
        throw new EndOfStreamException($"the stream ended before a '{name}' event");
    }

    /// <summary>Every event of a run's stream until it ends.</summary>
    private static async Task<List<(string Name, string Data)>> ReadEventsAsync(BoardClient client, string run, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        using var stream = await client.Http.GetStreamAsync($"/api/runs/events?run={run}", cancel.Token);
        using var reader = new StreamReader(stream);
        var events = new List<(string, string)>();
        string? name = null;
        while (await reader.ReadLineAsync(cancel.Token) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) name = line["event: ".Length..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add((name!, line["data: ".Length..]));
        }
        return events;
    }

    private static async Task<JsonObject> WaitForStateAsync(BoardClient client, string run, string state)
    {
        JsonObject? found = null;
        await WaitAsync(async () =>
        {
            found = (await client.GetJsonAsync("/api/runs"))["runs"]!.AsArray().Single(r => r!["id"]!.GetValue<string>() == run)!.AsObject();
            return found["state"]!.GetValue<string>() == state;
        }, TimeSpan.FromMinutes(2), () => found?.ToJsonString());
        return found!;
    }

    private static Task WaitAsync(Func<bool> condition, TimeSpan timeout) => WaitAsync(() => Task.FromResult(condition()), timeout);

    private static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string?>? describe = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"waited {timeout.TotalSeconds} s in vain; last: {describe?.Invoke()}");
            await Task.Delay(100);
        }
    }
}
