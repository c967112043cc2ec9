using System.Globalization;
using System.Text.Json;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Training;

namespace SharpTune.Tests.Preference;

/// <summary>
/// `check pref` against the preference fixtures: every DPO-family loss setting and KTO on qwen2-small-vocab with the
/// lora adapter: loss, log-probs and rewards within 1e-5 relative, every adapter gradient within 1e-4 relative L2.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class CheckPrefCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sharptune-checkpref-" + Guid.NewGuid().ToString("N"));

    public CheckPrefCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, true);

    public static TheoryData<string> DpoCases => new(PreferenceFixtures.DpoCases.Select(c => c.GetProperty("case").GetString()!));

    private Dictionary<string, float[]> Run(string input, params string[] options)
    {
        string output = Path.Combine(_dir, "out.safetensors");
        var result = CliRunner.Run(["check", "pref", "--model", TrainingFixtures.BaseModel, "--adapter", TrainingFixtures.LoraAdapter,
            "--input", input, "--out", output, .. options]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        return TrainingFixtures.Read(output);
    }

    private string BatchFile(JsonElement reference)
    {
        string path = Path.Combine(_dir, "batch.json");
        File.WriteAllText(path, reference.GetProperty("batch").GetRawText());
        return path;
    }

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    [Theory]
    [MemberData(nameof(DpoCases))]
    public void Dpo_family_case_matches_the_reference(string name)
    {
        var c = PreferenceFixtures.DpoCase(name);
        var reference = PreferenceFixtures.DpoReference;
        var options = new List<string>
        {
            "--pref-loss", c.GetProperty("pref_loss").GetString()!,
            "--pref-beta", Number(c.GetProperty("pref_beta").GetDouble()),
            "--label-smoothing", Number(c.GetProperty("dpo_label_smoothing").GetDouble()),
            "--pref-ftx", Number(c.GetProperty("pref_ftx").GetDouble()),
        };
        if (c.GetProperty("simpo_gamma").ValueKind == JsonValueKind.Number)
            options.AddRange(["--simpo-gamma", Number(c.GetProperty("simpo_gamma").GetDouble())]);
        var tensors = Run(BatchFile(reference), [.. options]);

        PreferenceFixtures.AssertRelative("loss", [c.GetProperty("loss").GetDouble()], tensors["loss"]);
        foreach (string key in new[] { "policy_chosen_logps", "policy_rejected_logps", "rewards_chosen", "rewards_rejected" })
            PreferenceFixtures.AssertRelative(key, PreferenceFixtures.Doubles(c, key), tensors[key]);
        foreach (string key in new[] { "reference_chosen_logps", "reference_rejected_logps" })
            PreferenceFixtures.AssertRelative(key, PreferenceFixtures.Doubles(reference, key), tensors[key]);
        PreferenceFixtures.AssertGradients(PreferenceFixtures.Dpo(c.GetProperty("grads_file").GetString()!), tensors);
    }

    [Fact]
    public void Kto_matches_the_reference()
    {
        var reference = PreferenceFixtures.KtoReference;
        var tags = reference.GetProperty("batch").GetProperty("kto_tags").EnumerateArray().Select(t => t.GetBoolean()).ToArray();
        var tensors = Run(BatchFile(reference), "--stage", "kto", "--pref-beta", Number(reference.GetProperty("pref_beta").GetDouble()),
            "--kto-chosen-weight", Number(reference.GetProperty("kto_chosen_weight").GetDouble()),
            "--kto-rejected-weight", Number(reference.GetProperty("kto_rejected_weight").GetDouble()));

        double[] policy = PreferenceFixtures.Doubles(reference, "policy_logps"), referenceLogps = PreferenceFixtures.Doubles(reference, "reference_logps");
        double[] Split(double[] values, bool desirable) => values.Where((_, i) => tags[i] == desirable).ToArray();
        double beta = reference.GetProperty("pref_beta").GetDouble();
        PreferenceFixtures.AssertRelative("loss", [reference.GetProperty("loss").GetDouble()], tensors["loss"]);
        PreferenceFixtures.AssertRelative("kl", [reference.GetProperty("kl").GetDouble()], tensors["kl"]);
        foreach (var (split, desirable) in new[] { ("chosen", true), ("rejected", false) })
        {
            PreferenceFixtures.AssertRelative($"policy_{split}_logps", Split(policy, desirable), tensors[$"policy_{split}_logps"]);
            PreferenceFixtures.AssertRelative($"reference_{split}_logps", Split(referenceLogps, desirable), tensors[$"reference_{split}_logps"]);
            // TRL's rewards β·(π − ρ), from the fixture's float64 log-probs.
            var rewards = Split(policy, desirable).Zip(Split(referenceLogps, desirable), (p, r) => beta * (p - r)).ToArray();
            PreferenceFixtures.AssertRelative($"rewards_{split}", rewards, tensors[$"rewards_{split}"]);
        }
        PreferenceFixtures.AssertGradients(PreferenceFixtures.Kto("grads.safetensors"), tensors);
    }

    /// <summary>
    /// Without an adapter every weight trains and the reference is a frozen copy of the model: at the starting point
    /// policy and reference agree (the fixture's reference log-probs, the base model's), so Δ = 0, the sigmoid loss is
    /// log 2 and the rewards are 0, while the gradients are those of −logσ at 0.
    /// </summary>
    [Fact]
    public void Full_tuning_uses_a_frozen_copy_as_the_reference()
    {
        var reference = PreferenceFixtures.DpoReference;
        string output = Path.Combine(_dir, "full.safetensors");
        var result = CliRunner.Run("check", "pref", "--model", TrainingFixtures.BaseModel, "--input", BatchFile(reference), "--out", output);
        Assert.True(result.ExitCode == 0, result.Stderr);
        var tensors = TrainingFixtures.Read(output);

        PreferenceFixtures.AssertRelative("loss", [Math.Log(2)], tensors["loss"]);
        foreach (string split in new[] { "chosen", "rejected" })
        {
            var expected = PreferenceFixtures.Doubles(reference, $"reference_{split}_logps");
            PreferenceFixtures.AssertRelative($"policy_{split}_logps", expected, tensors[$"policy_{split}_logps"]);
            PreferenceFixtures.AssertRelative($"reference_{split}_logps", expected, tensors[$"reference_{split}_logps"]);
            Assert.All(tensors[$"rewards_{split}"], r => Assert.Equal(0f, r));
        }
        Assert.Contains("grad.model.embed_tokens.weight", tensors.Keys);
        Assert.Contains(tensors["grad.model.layers.0.mlp.down_proj.weight"], g => g != 0);
    }

    [Fact]
    public void The_whole_reference_file_is_read_through_its_batch()
    {
        var tensors = Run(PreferenceFixtures.Dpo("reference.json"), "--pref-loss", "sigmoid", "--pref-beta", "0.1");
        PreferenceFixtures.AssertRelative("loss", [PreferenceFixtures.DpoCase("0_sigmoid").GetProperty("loss").GetDouble()], tensors["loss"]);
    }

    [Theory]
    [InlineData(new[] { "--stage", "ppo" }, "--stage must be one of dpo, kto")]
    [InlineData(new[] { "--pref-loss", "bco" }, "pref_loss must be one of sigmoid, hinge, ipo, orpo, simpo, got 'bco'")]
    [InlineData(new[] { "--pref-loss", "hinge", "--label-smoothing", "0.1" }, "dpo_label_smoothing applies to pref_loss sigmoid only")]
    [InlineData(new[] { "--pref-beta", "0" }, "pref_beta must be a positive number")]
    public void Bad_options_are_one_line_errors(string[] options, string message)
    {
        var result = CliRunner.Run(["check", "pref", "--model", TrainingFixtures.BaseModel, "--adapter", TrainingFixtures.LoraAdapter,
            "--input", PreferenceFixtures.Dpo("reference.json"), "--out", Path.Combine(_dir, "x.safetensors"), .. options]);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(message, result.Stderr);
        Assert.False(File.Exists(Path.Combine(_dir, "x.safetensors")));
    }

    [Fact]
    public void A_batch_without_rejected_rows_names_the_field()
    {
        string path = Path.Combine(_dir, "bad.json");
        var batch = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(PreferenceFixtures.DpoReference.GetProperty("batch").GetRawText())!;
        batch.Remove("rejected_labels");
        File.WriteAllText(path, JsonSerializer.Serialize(batch));
        var result = CliRunner.Run("check", "pref", "--model", TrainingFixtures.BaseModel, "--adapter", TrainingFixtures.LoraAdapter,
            "--input", path, "--out", Path.Combine(_dir, "x.safetensors"));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"{path}: 'rejected_labels' must be a list of lists of integers", result.Stderr);
    }
}
