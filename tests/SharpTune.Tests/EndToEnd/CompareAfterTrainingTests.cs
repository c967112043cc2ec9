using System.Text.Json;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// The demo's story in small: LoRA-train the tiny model on a few identity records until it knows them, then
/// `sharptune compare` on those records shows the random base's babble before and the trained answers after.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class CompareAfterTrainingTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    [Fact]
    public void TheAfterColumnHoldsTheTrainedAnswers()
    {
        string adapter = tiny.PathFor("identity-lora");
        TinyModelFixture.Train(tiny.WriteConfig("identity-lora", adapter,
            ("max_samples", 3), ("per_device_train_batch_size", 3), ("lora_rank", 8), ("max_steps", 40), ("save_steps", 100)));
        string report = tiny.PathFor("compare");

        var r = CliRunner.Run("compare", "--model", tiny.ModelDir, "--adapter", adapter, "--dataset", "identity",
            "--dataset-dir", TinyModelFixture.BundledData, "--max-samples", "3", "--max-new-tokens", "32", "--out", report);

        Assert.True(r.ExitCode == 0, r.Stderr);
        string[] answers = JsonDocument.Parse(File.ReadAllText(Path.Combine(TinyModelFixture.BundledData, "identity.json"))).RootElement
            .EnumerateArray().Take(3).Select(e => e.GetProperty("output").GetString()!).ToArray();
        string md = File.ReadAllText(Path.Combine(report, "compare.md"));
        string html = File.ReadAllText(Path.Combine(report, "compare.html"));
        foreach (string answer in answers)
        {
            string escaped = answer.Replace("!", "\\!");
            Assert.Contains($"| *reference* | {escaped} |", md);
            Assert.Contains($"| **identity-lora** | {escaped} |", md);
            Assert.DoesNotContain($"| **base** | {escaped} |", md);
            Assert.Contains($"<h4>identity-lora</h4><div class=\"text\">{System.Net.WebUtility.HtmlEncode(answer)}</div>", html);
        }
        var lines = r.Stdout.ReplaceLineEndings("\n").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        double BleuOf(string line) => double.Parse(line.Split("BLEU-4 ")[1].Split(',')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.StartsWith("base: ", lines[0]);
        Assert.StartsWith("identity-lora: ", lines[1]);
        Assert.True(BleuOf(lines[0]) < 20, lines[0]);
        Assert.True(BleuOf(lines[1]) > 80, lines[1]);
    }
}
