using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpTune.Tests.Data.Cleaning;

namespace SharpTune.Tests.Board;

/// <summary>The page's frame in real Chromium: tabs, the top bar, and every label in English and Chinese.</summary>
public sealed partial class BoardPageTests(BoardSite site) : IClassFixture<BoardSite>
{
    private static readonly string Wwwroot = Path.Combine(TestPaths.RepoRoot, "src", "SharpTune.Board", "wwwroot");

    [ChromiumFact]
    public async Task TheFrameLoads_TabsSwitch_AndTheChosenLanguageIsRemembered()
    {
        await using var page = await site.OpenPageAsync();
        Assert.Equal("Train", (await page.EvaluateAsync("document.querySelector('#tabs button.active').textContent"))!.GetValue<string>());
        Assert.Equal("models/tiny", (await page.EvaluateAsync("document.querySelector('#model-list option').value"))!.GetValue<string>());
        await page.EvaluateAsync("document.querySelector('#tabs button[data-tab=chat]').click()");
        Assert.False((await page.EvaluateAsync("document.getElementById('tab-chat').hidden"))!.GetValue<bool>());
        Assert.True((await page.EvaluateAsync("document.getElementById('tab-train').hidden"))!.GetValue<bool>());

        await page.EvaluateAsync("(async () => { const s = document.getElementById('language'); s.value = 'zh'; s.dispatchEvent(new Event('change')); })()");
        await page.WaitForAsync("document.querySelector('#tabs button[data-tab=train]').textContent === '训练'", TimeSpan.FromSeconds(10));
        await page.ReloadAsync();
        await page.WaitForAsync("document.body.dataset.ready === 'true'", TimeSpan.FromSeconds(30));
        Assert.Equal("zh-CN", (await page.EvaluateAsync("document.documentElement.lang"))!.GetValue<string>());
        Assert.Equal("对话", (await page.EvaluateAsync("document.querySelector('#tabs button[data-tab=chat]').textContent"))!.GetValue<string>());
        // Every labelled element shows a label of the dictionary, not its key.
        var keysShown = (await page.EvaluateAsync("Array.from(document.querySelectorAll('[data-i18n]')).filter(e => e.textContent === e.dataset.i18n).map(e => e.dataset.i18n)"))!.AsArray();
        Assert.Empty(keysShown);
    }

    [Fact]
    public void EveryLabel_IsDeclaredInEnglishAndChinese_AndEveryUsedKeyExists()
    {
        var site18n = new SharpTune.Board.I18n(new SharpTune.Board.StaticAssets());
        var en = site18n.Dictionary("en").Select(p => p.Key).ToHashSet();
        var zh = site18n.Dictionary("zh").Select(p => p.Key).ToHashSet();
        Assert.Empty(en.Except(zh));
        Assert.Empty(zh.Except(en));
        foreach (string file in Directory.EnumerateFiles(Wwwroot, "*.*", SearchOption.AllDirectories).Where(f => f.EndsWith(".html") || f.EndsWith(".js")))
        {
            string text = File.ReadAllText(file);
            var used = UsedKeys().Matches(text).Select(m => m.Groups[1].Value + m.Groups[2].Value);
            foreach (string key in used)
                Assert.True(en.Contains(key), $"{Path.GetRelativePath(Wwwroot, file)} uses label '{key}', which i18n/*.en.json does not declare");
        }
        // Each tab's labels are its own: keys are prefixed with the file's tab name.
        foreach (string file in Directory.EnumerateFiles(Path.Combine(Wwwroot, "i18n")))
        {
            string prefix = Path.GetFileName(file).Split('.')[0] + ".";
            Assert.All(JsonNode.Parse(File.ReadAllText(file))!.AsObject().Select(p => p.Key), key => Assert.StartsWith(prefix, key));
        }
    }

    // data-i18n="key", data-i18n-title="key", data-i18n-placeholder="key", and Board.t('key') / t("key").
    [GeneratedRegex("""data-i18n(?:-title|-placeholder)?="([a-z_]+\.[a-z0-9_.]+)"|\bt\(['"]([a-z_]+\.[a-z0-9_.]+)['"]""")]
    private static partial Regex UsedKeys();
}
