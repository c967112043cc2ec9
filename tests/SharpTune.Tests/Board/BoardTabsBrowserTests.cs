using System.Text.Json;
using SharpTune.Tests.Data.Cleaning;

namespace SharpTune.Tests.Board;

/// <summary>
/// The chat, export, compare and evaluate tabs in real Chromium against the trained board, clicked as a person
/// would: each test checks what the page shows and saves a screenshot of its tab to the test output's
/// board-screenshots/ folder (docs/images/board-*.png are copies).
/// </summary>
[Collection(TrainedBoardCollection.Name)]
public sealed class BoardTabsBrowserTests(TrainedBoardSite site)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    public static string Screenshot(string name) => Path.Combine(AppContext.BaseDirectory, "board-screenshots", name + ".png");

    private static string Js(string text) => JsonSerializer.Serialize(text);

    /// <summary>Picks the tiny model and the trained run in the top bar, as a person would.</summary>
    private static async Task SelectTrainedAdapterAsync(ChromiumPage page)
    {
        await page.EvaluateAsync("(() => { const m = document.getElementById('model'); m.value = 'models/tiny'; m.dispatchEvent(new Event('change')); })()");
        string option = $"[...document.getElementById('adapters').options].find(o => o.value === {Js(TrainedBoardSite.AdapterRun)})";
        await page.WaitForAsync(option, Patience, "[...document.getElementById('adapters').options].map(o => o.value)");
        await page.EvaluateAsync($"(() => {{ {option}.selected = true; document.getElementById('adapters').dispatchEvent(new Event('change')); }})()");
    }

    private static Task SetAsync(ChromiumPage page, string id, string value) =>
        page.EvaluateAsync($"(() => {{ const e = document.getElementById({Js(id)}); e.value = {Js(value)}; e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change')); }})()");

    private static Task ClickAsync(ChromiumPage page, string id) => page.EvaluateAsync($"document.getElementById({Js(id)}).click()");

    [ChromiumFact]
    public async Task Chat_LoadsTheAdapter_AndShowsTheTrainedIdentity()
    {
        await using var page = await site.OpenPageAsync("#chat");
        await SelectTrainedAdapterAsync(page);
        await ClickAsync(page, "chat-load");
        await page.WaitForAsync("!document.getElementById('chat-send').disabled", Patience, "document.getElementById('chat-state').textContent");
        Assert.Contains("train_identity", (await page.EvaluateAsync("document.getElementById('chat-state').textContent"))!.GetValue<string>());
        // The thinking toggle is only for thinking templates (Qwen3); qwen has none, so it is not shown.
        Assert.True((await page.EvaluateAsync("document.getElementById('chat-thinking-box').offsetParent === null"))!.GetValue<bool>());
        try
        {
            await SetAsync(page, "chat-temperature", "0");
            var (question, answer) = TrainedBoardSite.Identity[2];
            await SetAsync(page, "chat-input", question);
            await ClickAsync(page, "chat-send");
            string reply = "document.querySelector('#chat-log .chat-message.assistant .chat-text')?.textContent";
            await page.WaitForAsync($"{reply} === {Js(answer)} && !document.getElementById('chat-send').disabled", Patience, reply);
            await page.ScreenshotAsync(Screenshot("chat"));

            await ClickAsync(page, "chat-clear");
            Assert.Equal(0, (await page.EvaluateAsync("document.querySelectorAll('#chat-log .chat-message').length"))!.GetValue<int>());
        }
        finally
        {
            await ClickAsync(page, "chat-unload");
            await page.WaitForAsync("!document.getElementById('chat-load').disabled", Patience);
        }
    }

    [ChromiumFact]
    public async Task Export_MergesIntoSaves_AndNamesTheFolder()
    {
        await using var page = await site.OpenPageAsync("#export");
        await SelectTrainedAdapterAsync(page);
        const string exportDir = "saves/tiny/export/from-the-page";
        await SetAsync(page, "export-dir", exportDir);
        await SetAsync(page, "export-size", "1");
        await ClickAsync(page, "export-start");
        // The tab shows the latest export, which may be an earlier one until this one is under way.
        await page.WaitForAsync($"!document.getElementById('export-result').hidden && document.getElementById('export-folder').textContent === {Js(exportDir)}", Patience,
            "document.getElementById('export-state').textContent + ' ' + document.getElementById('export-error').textContent");
        Assert.True(File.Exists(Path.Combine(site.PathOf(exportDir), "model.safetensors")));
        await page.ScreenshotAsync(Screenshot("export"));
    }

    [ChromiumFact]
    public async Task Compare_ShowsTheBaseAndTheAdapterSideBySide()
    {
        await using var page = await site.OpenPageAsync("#compare");
        await SelectTrainedAdapterAsync(page);
        // Typed questions are the default: the dataset fields are not shown.
        Assert.True((await page.EvaluateAsync("document.getElementById('compare-dataset-box').offsetParent === null"))!.GetValue<bool>());
        await SetAsync(page, "compare-questions", string.Join("\n", TrainedBoardSite.Identity.Select(i => i.Question)));
        await SetAsync(page, "compare-max-tokens", "40");
        // The tab shows the latest comparison, which may be an earlier one until this one is under way: wait for a new report.
        string before = (await page.EvaluateAsync("document.getElementById('compare-files').textContent"))!.GetValue<string>();
        await ClickAsync(page, "compare-start");
        await page.WaitForAsync($"!document.getElementById('compare-report').hidden && document.getElementById('compare-files').textContent !== {Js(before)}", Patience,
            "document.getElementById('compare-state').textContent + ' ' + document.getElementById('compare-error').textContent");
        var headers = await page.EvaluateAsync("[...document.querySelectorAll('#compare-table th')].map(th => th.firstChild.textContent)");
        Assert.Equal(["Question", "base", "train_identity"], headers!.AsArray().Select(h => h!.GetValue<string>()));
        var trained = await page.EvaluateAsync("[...document.querySelectorAll('#compare-table tr')].slice(1).map(tr => tr.children[2].textContent)");
        Assert.Equal(TrainedBoardSite.Identity.Select(i => i.Answer), trained!.AsArray().Select(a => a!.GetValue<string>()));
        await page.ScreenshotAsync(Screenshot("compare"));
    }

    [ChromiumFact]
    public async Task Evaluate_BrowsesThePredictionsWithTheirScores_InChineseToo()
    {
        await using var page = await site.OpenPageAsync("#evaluate");
        // A prediction run queued from the tab (the run queue runs `sharptune train`), followed until its rows show.
        await SelectTrainedAdapterAsync(page);
        await SetAsync(page, "evaluate-datasets", "identity");
        await SetAsync(page, "evaluate-max-samples", TrainedBoardSite.Records.ToString());
        await SetAsync(page, "evaluate-cutoff-len", "64");
        await SetAsync(page, "evaluate-max-new-tokens", "40");
        await ClickAsync(page, "evaluate-start");
        string rows = "document.querySelectorAll('#evaluate-rows tr').length - 1";
        await page.WaitForAsync($"{rows} === {TrainedBoardSite.Records}", Patience,
            "document.getElementById('evaluate-started').textContent + ' ' + document.getElementById('evaluate-error').textContent");
        Assert.StartsWith("saves/tiny/lora/eval_", (await page.EvaluateAsync("document.getElementById('evaluate-run-dir').value"))!.GetValue<string>());
        Assert.Contains("predict_bleu-4", (await page.EvaluateAsync("document.getElementById('evaluate-metrics').textContent"))!.GetValue<string>());
        var reference = await page.EvaluateAsync("document.querySelector('#evaluate-rows tr:nth-child(2) td:nth-child(3)').textContent");
        Assert.Equal(TrainedBoardSite.Identity[0].Answer + "\n", reference!.GetValue<string>());
        var bleu = await page.EvaluateAsync("Number(document.querySelector('#evaluate-rows tr:nth-child(2) td:nth-child(5)').textContent)");
        Assert.InRange(bleu!.GetValue<double>(), 0, 100);
        await page.ScreenshotAsync(Screenshot("evaluate"));

        // The same tab in Chinese: labels and table headers switch, the rows stay.
        await page.EvaluateAsync("(() => { const l = document.getElementById('language'); l.value = 'zh'; l.dispatchEvent(new Event('change')); })()");
        await page.WaitForAsync("document.querySelector('#evaluate-rows th:nth-child(4)').textContent === '预测结果'", Patience,
            "document.querySelector('#evaluate-rows th:nth-child(4)').textContent");
        Assert.Equal("评估与预测", (await page.EvaluateAsync("document.querySelector('#tabs button[data-tab=evaluate]').textContent"))!.GetValue<string>());
        Assert.Equal(TrainedBoardSite.Records, (await page.EvaluateAsync(rows))!.GetValue<int>());
        await page.ScreenshotAsync(Screenshot("evaluate-zh"));
    }
}
