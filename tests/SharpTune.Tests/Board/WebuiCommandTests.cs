using System.Diagnostics;
using System.Globalization;
using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;

namespace SharpTune.Tests.Board;

/// <summary>`sharptune webui` as a user starts it: it serves the page until Ctrl+C, and refuses a public host without a token.</summary>
[Collection(CliCollection.Name)]
public sealed class WebuiCommandTests
{
    [PosixFact]
    public async Task Webui_ServesThePage_UntilCtrlC()
    {
        string root = Directory.CreateTempSubdirectory("sharptune-webui-").FullName;
        try
        {
            using var process = Process.Start(CliProcess.StartInfo(["webui", "--port", "0", "--root", root]))!;
            const string started = "[sharptune] SharpTune Board at ";
            Uri? url = null;
            using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
                while (url is null && await process.StandardError.ReadLineAsync(timeout.Token) is { } line)
                    if (line.StartsWith(started, StringComparison.Ordinal)) url = new Uri(line[started.Length..].Split(' ')[0]);
            Assert.NotNull(url);
            using var http = new HttpClient { BaseAddress = url };
            Assert.Contains("<title>SharpTune Board</title>", await http.GetStringAsync("/"));
            Process.Start("kill", ["-INT", process.Id.ToString(CultureInfo.InvariantCulture)])!.WaitForExit();
            Assert.True(process.WaitForExit(20_000), "webui did not stop on SIGINT");
            Assert.Equal(0, process.ExitCode);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Webui_OffLoopbackWithoutAToken_Refuses()
    {
        var r = CliRunner.Run("webui", "--host", "0.0.0.0", "--port", "0", "--root", TestPaths.RepoRoot);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("is not a loopback address: give --token T", r.Stderr);
    }
}
