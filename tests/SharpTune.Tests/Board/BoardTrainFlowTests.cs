using SharpTune.Tests.Data.Cleaning;

namespace SharpTune.Tests.Board;

/// <summary>
/// The Train tab end to end in real Chromium, in English and in Chinese: the tiny model and the identity dataset,
/// the preview's masked prompt tokens, a LoRA run whose chart points arrive, a reload that finds the run again, a
/// second run aborted, the first finishing with its links, and a malformed dataset_info.json shown with its error.
/// Screenshots of every tab go to board-screenshots/ beside the test binaries.
/// </summary>
[Collection(Cli.CliCollection.Name)]
public sealed class BoardTrainFlowTests(BoardSite site) : IClassFixture<BoardSite>
{
    public static string Screenshots => Path.Combine(AppContext.BaseDirectory, "board-screenshots");
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(2);

    // Fills the top bar and the form as a user would, through the inputs and their change events.
    private static async Task ChooseTinyModelAndIdentityAsync(ChromiumPage page, int maxSteps)
    {
        await page.EvaluateAsync("""
            (() => {
              const model = document.getElementById('model');
              model.value = 'models/tiny';
              model.dispatchEvent(new Event('change'));
            })()
            """);
        await page.WaitForAsync("!document.getElementById('topbar-note').hidden", TimeSpan.FromSeconds(20));
        await page.EvaluateAsync($$"""
            (() => {
              for (const option of document.getElementById('train-datasets').options) option.selected = option.value === 'identity';
              const values = { max_steps: {{maxSteps}}, logging_steps: 1, save_steps: 1000, cutoff_len: 64, max_samples: 16,
                per_device_train_batch_size: 4, gradient_accumulation_steps: 1, lora_rank: 4, learning_rate: 0.01 };
              for (const [key, value] of Object.entries(values)) document.getElementById('train-field-' + key).value = String(value);
            })()
            """);
    }

    private static async Task PreviewShowsMaskedPromptTokensAsync(ChromiumPage page)
    {
        await page.EvaluateAsync("document.getElementById('train-preview-open').click()");
        await page.WaitForAsync("document.querySelectorAll('#train-preview-records .tokens span.prompt').length > 0", TimeSpan.FromSeconds(30),
            "document.getElementById('train-preview-error').textContent");
        Assert.True((await page.EvaluateAsync("document.querySelectorAll('#train-preview-records .tokens span.trained').length"))!.GetValue<int>() > 0);
        Assert.Contains("Who are you?", (await page.EvaluateAsync(
            "Array.from(document.querySelectorAll('#train-preview-records .record')[2].querySelectorAll('span.prompt')).map(s => s.textContent).join('')"))!.GetValue<string>());
    }

    private static Task<string> WatchedRunAsync(ChromiumPage page) =>
        page.EvaluateAsync("document.getElementById('train-live-title').textContent").ContinueWith(t => t.Result!.GetValue<string>());

    private static async Task StartAsync(ChromiumPage page)
    {
        string before = await WatchedRunAsync(page);
        await page.EvaluateAsync("document.getElementById('train-start').click()");
        await page.WaitForAsync($"document.getElementById('train-live-title').textContent !== '{before}'", TimeSpan.FromSeconds(20),
            "document.getElementById('train-error').textContent");
    }

    private static async Task MalformedDatasetInfoIsShownAsync(BoardSite site, ChromiumPage page, string brokenName)
    {
        string broken = Directory.CreateDirectory(Path.Combine(site.Root, "data", brokenName)).FullName;
        File.WriteAllText(Path.Combine(broken, "dataset_info.json"), "{ \"identity\": { \"file_name\": \"identity.json\" }, oops }");
        await page.ReloadAsync();
        await page.WaitForAsync("document.body.dataset.ready === 'true'", TimeSpan.FromSeconds(30));
        await page.EvaluateAsync($"(() => {{ const s = document.getElementById('train-dataset-dir'); s.value = 'data/{brokenName}'; s.dispatchEvent(new Event('change')); }})()");
        await page.WaitForAsync("!document.getElementById('train-dataset-error').hidden", TimeSpan.FromSeconds(10));
        string error = (await page.EvaluateAsync("document.getElementById('train-dataset-error').textContent"))!.GetValue<string>();
        Assert.Contains(Path.Combine(broken, "dataset_info.json"), error);
        Assert.Contains("invalid JSON", error);
        Assert.Equal(0, (await page.EvaluateAsync("document.getElementById('train-datasets').options.length"))!.GetValue<int>());
    }

    [ChromiumFact]
    public async Task TrainAWatchedRun_ReloadMidRun_AbortASecond_FinishTheFirst()
    {
        await using var page = await site.OpenPageAsync();
        await ChooseTinyModelAndIdentityAsync(page, maxSteps: 40);
        await PreviewShowsMaskedPromptTokensAsync(page);

        await StartAsync(page);
        string first = await WatchedRunAsync(page);
        Assert.StartsWith("saves/tiny/lora/train_", first);
        await page.WaitForAsync("document.querySelectorAll('#train-chart circle.point').length > 0", RunTimeout, "document.getElementById('train-output').textContent");
        await page.ScreenshotAsync(Path.Combine(Screenshots, "train-live.png"));

        // A reload finds the run again, with the points logged so far.
        await page.ReloadAsync();
        await page.WaitForAsync("document.body.dataset.ready === 'true'", TimeSpan.FromSeconds(30));
        Assert.Equal(first, await WatchedRunAsync(page));
        await page.WaitForAsync("document.querySelectorAll('#train-chart circle.point').length > 0", TimeSpan.FromSeconds(20));

        // A second run (queued behind the first, or started if the first is done) is aborted.
        await Task.Delay(1100); // the default output folder is named by the second
        await ChooseTinyModelAndIdentityAsync(page, maxSteps: 400);
        await StartAsync(page);
        string second = await WatchedRunAsync(page);
        Assert.NotEqual(first, second);
        await page.WaitForAsync("!document.getElementById('train-abort').disabled", TimeSpan.FromSeconds(20));
        await page.EvaluateAsync("document.getElementById('train-abort').click()");
        await page.WaitForAsync("document.getElementById('train-state').className === 'state-aborted'", RunTimeout, "document.getElementById('train-state').textContent");
        Assert.False((await page.EvaluateAsync("document.getElementById('train-failure').hidden"))!.GetValue<bool>());

        // The first finishes: adapter, loss plot and the buttons to use it.
        await page.EvaluateAsync($"document.querySelector('#train-runs tr[data-run=\"{first}\"] button').click()");
        await page.WaitForAsync("!document.getElementById('train-success').hidden", RunTimeout, "document.getElementById('train-state').textContent");
        Assert.Equal(first, (await page.EvaluateAsync("document.getElementById('train-adapter').textContent"))!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(site.Root, first, "adapter_config.json")));
        Assert.Equal(200, (await page.EvaluateAsync("fetch(document.getElementById('train-loss-png').href).then(r => r.status)"))!.GetValue<int>());
        await page.ScreenshotAsync(Path.Combine(Screenshots, "train.png"));
        foreach (string tab in new[] { "evaluate", "chat", "compare", "export" })
        {
            await page.EvaluateAsync($"Board.show('{tab}')");
            await page.ScreenshotAsync(Path.Combine(Screenshots, $"{tab}.png"), fullPage: false);
        }
        await page.EvaluateAsync("Board.show('train')");

        await MalformedDatasetInfoIsShownAsync(site, page, "broken_en");
        await page.ScreenshotAsync(Path.Combine(Screenshots, "train-dataset-error.png"), fullPage: false);
    }

    [ChromiumFact]
    public async Task TheSameFlow_InTheChineseUi()
    {
        await using var page = await site.OpenPageAsync();
        await page.EvaluateAsync("Board.setLanguage('zh')");
        Assert.Equal("开始", (await page.EvaluateAsync("document.getElementById('train-start').textContent"))!.GetValue<string>());
        Assert.Equal("学习率", (await page.EvaluateAsync("document.querySelector('[data-field=learning_rate] span').textContent"))!.GetValue<string>());
        await ChooseTinyModelAndIdentityAsync(page, maxSteps: 5);
        await PreviewShowsMaskedPromptTokensAsync(page);
        Assert.Equal("提示（不计损失）", (await page.EvaluateAsync("document.querySelector('#train-preview .legend .prompt').textContent"))!.GetValue<string>());

        await StartAsync(page);
        await page.WaitForAsync("document.querySelectorAll('#train-chart circle.point').length > 0", RunTimeout, "document.getElementById('train-output').textContent");
        await page.WaitForAsync("!document.getElementById('train-success').hidden", RunTimeout, "document.getElementById('train-state').textContent");
        Assert.Equal("已完成", (await page.EvaluateAsync("document.getElementById('train-state').textContent"))!.GetValue<string>());
        await page.ScreenshotAsync(Path.Combine(Screenshots, "train-zh.png"));

        await MalformedDatasetInfoIsShownAsync(site, page, "broken_zh");
        Assert.Equal("zh-CN", (await page.EvaluateAsync("document.documentElement.lang"))!.GetValue<string>());
    }
}
