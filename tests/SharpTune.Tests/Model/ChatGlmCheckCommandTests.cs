using System.Text.Json;
using SharpTune.IO.Safetensors;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Training;

namespace SharpTune.Tests.Model;

/// <summary>
/// ChatGLM3's architecture (model_type chatglm: fused query_key_value and dense_h_to_4h, grouped keys and values,
/// interleaved RoPE on half of each head) through the check commands, against what ChatGLM3's own
/// modeling_chatglm.py computed on the chatglm3-small fixture.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class ChatGlmCheckCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-chatglm-").FullName;
    private readonly ReferenceFixture _fixture = new("chatglm3-small");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Lora => TestPaths.Fixtures("chatglm3-small", "lora");

    private string WriteBatch(bool labels)
    {
        string path = Path.Combine(_dir, "batch.json");
        File.WriteAllText(path, labels
            ? JsonSerializer.Serialize(new { input_ids = _fixture.InputIds, attention_mask = _fixture.AttentionMask, labels = _fixture.Labels })
            : JsonSerializer.Serialize(new { input_ids = _fixture.InputIds, attention_mask = _fixture.AttentionMask }));
        return path;
    }

    [Fact]
    public void Forward_gives_the_logits_and_last_hidden_state_of_modeling_chatglm()
    {
        string output = Path.Combine(_dir, "forward.safetensors");

        var r = CliRunner.Run("check", "forward", "--model", _fixture.Directory, "--input", WriteBatch(labels: false), "--out", output);

        Assert.True(r.ExitCode == 0, r.Stderr);
        using var file = SafetensorsFile.Open(output);
        Assert.Equal([2L, 17, 320], file.Get("logits").Shape);
        Assert.Equal([2L, 17, 64], file.Get("last_hidden_state").Shape);
        foreach (string name in new[] { "last_hidden_state", "logits" })
        {
            float[] expected = _fixture.ForwardTensor(name), actual = file.ReadFloat32(name);
            int width = (int)file.Get(name).Shape[2], time = _fixture.InputIds[0].Length;
            for (int b = 0; b < 2; b++)
                for (int t = 0; t < time; t++)
                {
                    if (_fixture.AttentionMask[b][t] == 0) continue;
                    for (int i = 0; i < width; i++)
                    {
                        int k = (b * time + t) * width + i;
                        Assert.True(Math.Abs(expected[k] - actual[k]) <= 1e-4, $"{name}[{b},{t},{i}]: {expected[k]} vs {actual[k]}");
                    }
                }
        }
    }

    /// <summary>The reference's greedy ids came from full forwards; check generate decodes over the KV cache.</summary>
    [Fact]
    public void Generate_over_the_kv_cache_gives_the_greedy_ids_of_full_forwards()
    {
        var greedy = _fixture.Reference.GetProperty("greedy");
        int[] prompt = ReferenceFixture.IntArray(greedy.GetProperty("prompt"));
        int[] expected = ReferenceFixture.IntArray(greedy.GetProperty("new_ids"));
        string input = Path.Combine(_dir, "prompt.json");
        File.WriteAllText(input, JsonSerializer.Serialize(new { input_ids = new[] { prompt }, attention_mask = new[] { prompt.Select(_ => 1).ToArray() } }));

        var r = CliRunner.Run("check", "generate", "--model", _fixture.Directory, "--input", input, "--max-new-tokens", expected.Length.ToString());

        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(expected, JsonSerializer.Deserialize<int[]>(r.Stdout));
    }

    [Fact]
    public void Grad_gives_every_full_fine_tuning_gradient()
    {
        string output = Path.Combine(_dir, "full.safetensors");

        var r = CliRunner.Run("check", "grad", "--model", _fixture.Directory, "--input", WriteBatch(labels: true), "--out", output);

        Assert.True(r.ExitCode == 0, r.Stderr);
        var tensors = TrainingFixtures.Read(output);
        Assert.Equal(_fixture.Reference.GetProperty("loss").GetDouble(), tensors["loss"].Single(), 1e-5);
        var expected = TrainingFixtures.Read(Path.Combine(_fixture.Directory, "reference", "full_ft_grads.safetensors"));
        Assert.Equal(1 + 2 * expected.Count, tensors.Count);
        foreach (var (name, grad) in expected)
        {
            float scale = grad.Max(v => Math.Abs(v));
            TrainingFixtures.AssertClose(name, grad, tensors["grad." + name], 1e-5 * scale, 1e-5);
        }
    }

    /// <summary>PEFT's LoRA on the fused Linears: one A and one B over the whole fused output.</summary>
    [Fact]
    public void Grad_with_the_lora_adapter_gives_every_lora_gradient()
    {
        string output = Path.Combine(_dir, "lora.safetensors");

        var r = CliRunner.Run("check", "grad", "--model", _fixture.Directory, "--adapter", Lora, "--input", WriteBatch(labels: true), "--out", output);

        Assert.True(r.ExitCode == 0, r.Stderr);
        var tensors = TrainingFixtures.Read(output);
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(Lora, "reference", "reference.json")));
        Assert.Equal(reference.RootElement.GetProperty("loss").GetDouble(), tensors["loss"].Single(), 1e-5);
        var expected = TrainingFixtures.Read(Path.Combine(Lora, "reference", "lora_grads.safetensors"));
        Assert.Equal(16, expected.Count);
        Assert.Equal(1 + 2 * expected.Count, tensors.Count);
        foreach (var (name, grad) in expected)
        {
            float scale = grad.Max(v => Math.Abs(v));
            TrainingFixtures.AssertClose(name, grad, tensors[name], 1e-5 * scale, 1e-5);
        }
    }

    [Fact]
    public void Merge_gives_the_merged_projections_of_peft()
    {
        string output = Path.Combine(_dir, "merged");

        var r = CliRunner.Run("check", "merge", "--model", _fixture.Directory, "--adapter", Lora, "--out", output);

        Assert.True(r.ExitCode == 0, r.Stderr);
        var expected = TrainingFixtures.Read(Path.Combine(Lora, "reference", "merged_projections.safetensors"));
        using var merged = SafetensorsCheckpoint.OpenDirectory(output);
        using var original = SafetensorsCheckpoint.OpenDirectory(_fixture.Directory);
        Assert.Equal(original.Names.Order(StringComparer.Ordinal), merged.Names.Order(StringComparer.Ordinal));
        foreach (var (name, weight) in expected)
            TrainingFixtures.AssertClose(name, weight, merged.ReadFloat32(name), 1e-6, 0);
        foreach (string name in original.Names.Where(n => !expected.ContainsKey(n)))
            Assert.Equal(original.ReadFloat32(name), merged.ReadFloat32(name));
    }
}
