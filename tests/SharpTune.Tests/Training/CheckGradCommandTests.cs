using System.Text.Json;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.Training;

[Collection(CliCollection.Name)]
public sealed class CheckGradCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sharptune-checkgrad-" + Guid.NewGuid().ToString("N"));

    public CheckGradCommandTests()
    {
        Directory.CreateDirectory(_dir);
        var f = TrainingFixtures.Base;
        File.WriteAllText(Input, JsonSerializer.Serialize(new { input_ids = f.InputIds, attention_mask = f.AttentionMask, labels = f.Labels }));
    }

    private string Input => Path.Combine(_dir, "batch.json");

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Full_gradients_only()
    {
        string output = Path.Combine(_dir, "full.safetensors");
        var result = CliRunner.Run("check", "grad", "--model", TrainingFixtures.BaseModel, "--input", Input, "--out", output);
        Assert.True(result.ExitCode == 0, result.Stderr);
        var tensors = TrainingFixtures.Read(output);
        Assert.Equal(6.342043399810791, tensors["loss"].Single(), 1e-4);
        var expected = TrainingFixtures.Read(Path.Combine(TrainingFixtures.BaseModel, "reference", "full_ft_grads.safetensors"));
        var original = TrainingFixtures.Read(Path.Combine(TrainingFixtures.BaseModel, "model.safetensors"));
        Assert.Equal(1 + 2 * expected.Count, tensors.Count);
        foreach (var (name, grad) in expected)
        {
            float scale = grad.Max(v => Math.Abs(v));
            TrainingFixtures.AssertClose(name, grad, tensors["grad." + name], 1e-5 * scale, 1e-5);
            Assert.Equal(original[name], tensors["param." + name]);
        }
    }

    [Fact]
    public void Lora_two_adamw_steps()
    {
        string output = Path.Combine(_dir, "lora.safetensors");
        var result = CliRunner.Run("check", "grad", "--model", TrainingFixtures.BaseModel, "--adapter", TrainingFixtures.LoraAdapter,
            "--input", Input, "--out", output, "--steps", "2", "--lr", "1e-3", "--weight-decay", "0.01");
        Assert.True(result.ExitCode == 0, result.Stderr);
        var tensors = TrainingFixtures.Read(output);
        Assert.Equal(2, tensors["loss"].Length);
        Assert.Equal(6.352047443389893, tensors["loss"][0], 1e-4);
        string reference = Path.Combine(TrainingFixtures.LoraAdapter, "reference");
        var step2 = TrainingFixtures.Read(Path.Combine(reference, "lora_adamw_step2.safetensors"));
        var grads = TrainingFixtures.Read(Path.Combine(reference, "lora_grads.safetensors"));
        foreach (var (name, value) in step2)
        {
            TrainingFixtures.AssertClose(name, value, tensors["param." + name], 1e-4, 0);
            TrainingFixtures.AssertClose(name, grads[name], tensors["grad." + name], 1e-5 * grads[name].Max(v => Math.Abs(v)), 1e-5);
        }
    }

    [Fact]
    public void Mismatched_labels_are_one_line_errors()
    {
        File.WriteAllText(Input, """{"input_ids": [[1, 2, 3]], "attention_mask": [[1, 1, 1]], "labels": [[1, 2]]}""");
        var result = CliRunner.Run("check", "grad", "--model", TrainingFixtures.BaseModel, "--input", Input, "--out", Path.Combine(_dir, "x.safetensors"));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("'labels' must be 1 rows of 3 values", result.Stderr);
    }
}
