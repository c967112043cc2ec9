using System.Diagnostics;
using System.Text;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// bench/methods.sh, the one command behind docs/methods.md, run for two fast methods on a tiny budget so the script
/// keeps working: it generates the tiny model, trains, evaluates and predicts, and prints one table row per method.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class MethodsBenchScriptTests
{
    [Fact]
    public void TwoFastMethodsGiveOneMeasuredRowEach()
    {
        string work = Directory.CreateTempSubdirectory("sharptune-methods-").FullName;
        try
        {
            var start = new ProcessStartInfo("bash", [Path.Combine(TestPaths.RepoRoot, "bench", "methods.sh"), work])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            start.Environment["METHODS"] = "lora bitfit";
            start.Environment["STEPS"] = "2";
            start.Environment["PREDICT_SAMPLES"] = "2";
            start.Environment["MAX_NEW_TOKENS"] = "4";
            start.Environment["SHARPTUNE"] = Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli");
            using var process = Process.Start(start)!;
            var stderr = new StringBuilder();
            process.ErrorDataReceived += (_, e) => { lock (stderr) stderr.AppendLine(e.Data); };
            process.BeginErrorReadLine();
            string stdout = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"bench/methods.sh did not finish within 2 minutes:\n{stderr}");
            }
            process.WaitForExit();
            lock (stderr) Assert.True(process.ExitCode == 0, $"bench/methods.sh exited with {process.ExitCode}:\n{stderr}");

            string[] lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(4, lines.Length);
            Assert.StartsWith("| method | its keys | learning_rate | trainable parameters", lines[0]);
            Assert.Equal(File.ReadAllText(Path.Combine(work, "methods.md")), stdout);
            foreach (var (row, method) in new[] { (lines[2], "lora"), (lines[3], "bitfit") })
            {
                // The row's trainable line is the one the run printed (its '|' escaped for markdown), and every measured cell holds a number.
                string log = File.ReadAllText(Path.Combine(work, method, "train.log"));
                string trainable = log.Split('\n').Single(l => l.Contains("trainable params: ", StringComparison.Ordinal));
                string[] cells = row.Trim('|').Split(" | ").Select(c => c.Trim()).ToArray();
                Assert.Equal(method, cells[0]);
                Assert.EndsWith(cells[3].Replace("\\|", "|", StringComparison.Ordinal), trainable);
                Assert.Matches(@"^[0-9.]+ [KMG]B$", cells[4]);
                for (int i = 5; i < cells.Length; i++) Assert.Matches(@"^[0-9]+(\.[0-9]+)?$", cells[i]);
                Assert.True(File.Exists(Path.Combine(work, method, "predict", "generated_predictions.jsonl")));
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }
}
