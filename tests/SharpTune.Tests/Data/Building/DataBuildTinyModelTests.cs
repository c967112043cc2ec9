using System.Diagnostics;
using System.Text;
using System.Text.Json;
using SharpTune.Data.Cleaning;
using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Data.Building;

/// <summary>
/// `sharptune data build` against a real `sharptune api` process serving the tiny random model. Its replies are
/// gibberish, so what is checked is that the pipeline copes: it either writes a valid, registered dataset or says
/// which replies it could not use; it never crashes.
/// </summary>
public sealed class DataBuildTinyModelTests(TinyModelFixture fx) : IClassFixture<TinyModelFixture>
{
    private const string Serving = "[sharptune] serving the OpenAI API at ";

    [PosixFact]
    public void BuildsFromTheTinyModelServedBySharptuneApiOrReportsItsUnusableReplies()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("notes.md"), "# Notes\n\n## Tea\n\nGreen tea is steeped at about 80 degrees Celsius for two minutes. Black tea takes boiling water and four minutes.\n");
        string baseUrl;
        var stderr = new StringBuilder();
        var served = new TaskCompletionSource<string>();
        using var api = Process.Start(CliProcess.StartInfo(["api", "--model", fx.ModelDir, "--host", "127.0.0.1", "--port", "0"],
            new Dictionary<string, string?> { ["API_HOST"] = null, ["API_PORT"] = null, ["API_KEY"] = null, ["API_MODEL_NAME"] = null }))!;
        api.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stderr) stderr.AppendLine(e.Data);
            if (e.Data.StartsWith(Serving, StringComparison.Ordinal)) served.TrySetResult(e.Data[Serving.Length..].Split(';', ',', ' ')[0]);
        };
        api.BeginErrorReadLine();
        api.BeginOutputReadLine();
        try
        {
            Assert.True(served.Task.Wait(TimeSpan.FromMinutes(1)), $"sharptune api did not start serving:\n{stderr}");
            baseUrl = served.Task.Result;

            var result = CliProcess.Run(["data", "build", dir.File("notes.md"), "--out", dir.File("data/notes_qa.json"), "--base-url", baseUrl,
                "--model", "tiny", "--questions", "2", "--paraphrases", "1", "--max-tokens", "24", "--temperature", "0", "--seed", "1"]);

            Assert.True(result.ExitCode is 0 or 1, $"exit code {result.ExitCode}:\n{result.Stderr}");
            if (result.ExitCode == 0)
            {
                Assert.Contains("records kept -> " + dir.File("data/notes_qa.json"), result.Stdout);
                var inspection = DatasetInspector.InspectRegistered(dir.File("data"), "notes_qa", null);
                Assert.Empty(inspection.Problems);
                using var records = JsonDocument.Parse(File.ReadAllBytes(dir.File("data/notes_qa.json")));
                Assert.Equal(inspection.Records.Count, records.RootElement.GetArrayLength());
            }
            else
            {
                // Only the pipeline's own verdict on the replies is an acceptable failure, never a crash or an HTTP error.
                Assert.Contains("error: the teacher's replies gave no records (", result.Stderr);
                Assert.False(File.Exists(dir.File("data/notes_qa.json")));
            }
            Assert.NotEmpty(File.ReadAllLines(dir.File("data/notes_qa.journal.jsonl")));
        }
        finally
        {
            Process.Start("kill", ["-INT", api.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
            if (!api.WaitForExit(TimeSpan.FromSeconds(30))) api.Kill();
        }
    }
}
