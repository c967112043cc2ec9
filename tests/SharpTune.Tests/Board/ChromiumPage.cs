using System.Diagnostics;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Tests.Data.Cleaning;

namespace SharpTune.Tests.Board;

/// <summary>
/// A page in a real headless Chromium, driven over the DevTools protocol (a WebSocket to the browser; nothing to
/// download): navigate, evaluate script, wait for a condition, take a screenshot. One browser per page, in a
/// temporary profile, killed on dispose.
/// </summary>
public sealed class ChromiumPage : IAsyncDisposable
{
    private readonly Process _browser;
    private readonly string _profile;
    private readonly ClientWebSocket _socket = new();
    private int _nextId;

    private ChromiumPage(Process browser, string profile)
    {
        _browser = browser;
        _profile = profile;
    }

    /// <summary>Starts Chromium (<see cref="ChromiumFactAttribute.Chromium"/>) and connects to its one page.</summary>
    public static async Task<ChromiumPage> OpenAsync(int width = 1280, int height = 1000)
    {
        string profile = Directory.CreateTempSubdirectory("sharptune-chromium-").FullName;
        var start = new ProcessStartInfo(ChromiumFactAttribute.Chromium!,
            ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0", $"--user-data-dir={profile}",
             $"--window-size={width},{height}", "about:blank"])
            { RedirectStandardOutput = true, RedirectStandardError = true };
        var browser = Process.Start(start)!;
        browser.BeginOutputReadLine();
        browser.BeginErrorReadLine();
        var page = new ChromiumPage(browser, profile);
        try
        {
            // Chromium writes its port to DevToolsActivePort in the profile once it listens.
            string portFile = Path.Combine(profile, "DevToolsActivePort");
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!(File.Exists(portFile) && File.ReadAllLines(portFile) is [var port, ..] && port.Length > 0))
            {
                if (DateTime.UtcNow > deadline || browser.HasExited) throw new InvalidOperationException("chromium did not open its DevTools port in 30 s");
                await Task.Delay(100);
            }
            string devtools = $"http://127.0.0.1:{File.ReadAllLines(portFile)[0]}";
            using var http = new HttpClient();
            var targets = await http.GetFromJsonAsync<JsonArray>($"{devtools}/json/list");
            string socketUrl = targets!.Select(t => t!.AsObject()).First(t => (string?)t["type"] == "page")["webSocketDebuggerUrl"]!.GetValue<string>();
            await page._socket.ConnectAsync(new Uri(socketUrl), CancellationToken.None);
            await page.SendAsync("Page.enable");
            await page.SendAsync("Runtime.enable");
            return page;
        }
        catch
        {
            await page.DisposeAsync();
            throw;
        }
    }

    /// <summary>Loads a URL and waits until the document has loaded.</summary>
    public async Task GotoAsync(string url)
    {
        await SendAsync("Page.navigate", new JsonObject { ["url"] = url });
        await WaitForAsync("document.readyState === 'complete' && location.href !== 'about:blank'", TimeSpan.FromSeconds(20));
    }

    /// <summary>Reloads the page, as the browser's reload button does.</summary>
    public async Task ReloadAsync()
    {
        await EvaluateAsync("window.__beforeReload = true");
        await SendAsync("Page.reload");
        await WaitForAsync("document.readyState === 'complete' && window.__beforeReload === undefined", TimeSpan.FromSeconds(20));
    }

    /// <summary>Evaluates an expression (awaiting a promise) and returns its value as JSON (null for undefined).</summary>
    public async Task<JsonNode?> EvaluateAsync(string expression)
    {
        var reply = await SendAsync("Runtime.evaluate", new JsonObject
        {
            ["expression"] = expression,
            ["returnByValue"] = true,
            ["awaitPromise"] = true,
        });
        if (reply["exceptionDetails"] is JsonObject failure)
            throw new InvalidOperationException($"page script failed: {failure["exception"]?["description"] ?? failure["text"]}\n  in: {expression}");
        return reply["result"]?["value"]?.DeepClone();
    }

    /// <summary>Evaluates until the expression is truthy; fails with the expression and <paramref name="describe"/>'s value on timeout.</summary>
    public async Task WaitForAsync(string expression, TimeSpan timeout, string? describe = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var value = await EvaluateAsync($"!!({expression})");
            if (value?.GetValue<bool>() == true) return;
            if (DateTime.UtcNow > deadline)
            {
                string state = describe is null ? "" : $"; {describe} = {(await EvaluateAsync(describe))?.ToJsonString()}";
                throw new TimeoutException($"waited {timeout.TotalSeconds} s for: {expression}{state}");
            }
            await Task.Delay(50);
        }
    }

    /// <summary>Saves a PNG of the viewport (or, with <paramref name="fullPage"/>, of the whole page).</summary>
    public async Task ScreenshotAsync(string path, bool fullPage = true)
    {
        var parameters = new JsonObject { ["format"] = "png", ["captureBeyondViewport"] = fullPage };
        var reply = await SendAsync("Page.captureScreenshot", parameters);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        await File.WriteAllBytesAsync(path, Convert.FromBase64String(reply["data"]!.GetValue<string>()));
    }

    private async Task<JsonObject> SendAsync(string method, JsonObject? parameters = null)
    {
        int id = ++_nextId;
        var message = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters ?? new JsonObject() };
        await _socket.SendAsync(Encoding.UTF8.GetBytes(message.ToJsonString()), WebSocketMessageType.Text, true, CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var buffer = new byte[1 << 16];
        while (true)
        {
            using var text = new MemoryStream();
            WebSocketReceiveResult received;
            do
            {
                received = await _socket.ReceiveAsync(buffer, timeout.Token);
                text.Write(buffer, 0, received.Count);
            } while (!received.EndOfMessage);
            var reply = JsonNode.Parse(text.ToArray())!.AsObject();
            if ((int?)reply["id"] != id) continue; // an event, or a reply to nothing we wait for
            if (reply["error"] is JsonObject error) throw new InvalidOperationException($"DevTools {method} failed: {error.ToJsonString()}");
            return reply["result"]!.AsObject();
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.State == WebSocketState.Open) await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        }
        catch (WebSocketException)
        {
            // The browser is being killed anyway.
        }
        _socket.Dispose();
        if (!_browser.HasExited) _browser.Kill(entireProcessTree: true);
        _browser.WaitForExit(10_000);
        _browser.Dispose();
        try { Directory.Delete(_profile, recursive: true); }
        catch (IOException) { /* a crash-reporter file still being written; the temp folder is cleaned by the OS */ }
    }
}
