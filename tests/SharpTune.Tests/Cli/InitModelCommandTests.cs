using System.Text.Json;
using SharpTune.Chat;
using SharpTune.Inference;
using SharpTune.IO.Safetensors;
using SharpTune.Model;

namespace SharpTune.Tests.Cli;

/// <summary>`sharptune init-model` writes a folder that SharpTune itself loads and chats with.</summary>
[Collection(CliCollection.Name)]
public sealed class InitModelCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-init-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TinyPresetIsAQwen2FolderWithTheRealVocabularyAndItsTokenizer()
    {
        string output = Path.Combine(_dir, "tiny");
        var r = CliRunner.Run("init-model", "--preset", "tiny", "--tokenizer", TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"), "--out", output, "--seed", "3");
        Assert.True(r.ExitCode == 0, r.Stderr);

        var config = ModelConfig.Load(Path.Combine(output, "config.json"));
        Assert.Equal((151936, 64, 2, 4, 2, true), (config.VocabSize, config.HiddenSize, config.NumLayers, config.NumHeads, config.NumKvHeads, config.TieWordEmbeddings));
        Assert.Equal([151645], config.EosTokenIds);
        using (var file = SafetensorsFile.Open(Path.Combine(output, "model.safetensors")))
        {
            Assert.Equal(SharpTune.Engine.DType.BF16, file.Get("model.embed_tokens.weight").DType);
            Assert.False(file.Contains("lm_head.weight"));
            // The tiny preset's final norm is 4 so its tied logits can reach a trainable range (see ModelPresets).
            Assert.All(file.ReadFloat32("model.norm.weight"), v => Assert.Equal(4f, v));
        }
        using var generation = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "generation_config.json")));
        Assert.Equal([151645, 151643], generation.RootElement.GetProperty("eos_token_id").EnumerateArray().Select(e => e.GetInt32()));

        using var session = ChatSession.Open(output, "auto", null);
        Assert.Equal("qwen", session.Template.Name);
        var (_, result) = session.Reply("你好", new GenerationOptions { MaxNewTokens = 5 });
        Assert.Equal(5, result.NewIds.Length);
    }

    [Fact]
    public void SameSeedGivesTheSameWeights()
    {
        string a = Path.Combine(_dir, "a"), b = Path.Combine(_dir, "b");
        string tokenizer = TestPaths.Fixtures("tokenizers", "qwen2.5-instruct");
        Assert.Equal(0, CliRunner.Run("init-model", "--preset", "tiny", "--tokenizer", tokenizer, "--out", a, "--seed", "5").ExitCode);
        Assert.Equal(0, CliRunner.Run("init-model", "--preset", "tiny", "--tokenizer", tokenizer, "--out", b, "--seed", "5").ExitCode);
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "model.safetensors")), File.ReadAllBytes(Path.Combine(b, "model.safetensors")));
    }

    [Fact]
    public void Float32FolderHoldsTheBf16FolderValuesWidened()
    {
        string a = Path.Combine(_dir, "bf16"), b = Path.Combine(_dir, "f32");
        string tokenizer = TestPaths.Fixtures("tokenizers", "qwen2.5-instruct");
        Assert.Equal(0, CliRunner.Run("init-model", "--preset", "tiny", "--tokenizer", tokenizer, "--out", a, "--seed", "5").ExitCode);
        Assert.Equal(0, CliRunner.Run("init-model", "--preset", "tiny", "--tokenizer", tokenizer, "--out", b, "--seed", "5", "--dtype", "float32").ExitCode);
        Assert.Contains("\"torch_dtype\": \"float32\"", File.ReadAllText(Path.Combine(b, "config.json")));
        using var bf16 = SharpTune.IO.Safetensors.SafetensorsCheckpoint.OpenDirectory(a);
        using var f32 = SharpTune.IO.Safetensors.SafetensorsCheckpoint.OpenDirectory(b);
        const string name = "model.layers.0.mlp.down_proj.weight";
        Assert.Equal(SharpTune.Engine.DType.F32, f32.Get(name).DType);
        Assert.Equal(bf16.ReadFloat32(name), f32.ReadFloat32(name));
    }

    [Fact]
    public void UnknownPresetListsTheKnownOnes()
    {
        var r = CliRunner.Run("init-model", "--preset", "huge", "--tokenizer", TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"), "--out", Path.Combine(_dir, "x"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("unknown preset 'huge' (known: tiny, small, qwen2.5-0.5b-shape, qwen1.5-1.8b-shape, chatglm3-tiny, chatglm3-6b-shape)", r.Stderr);
    }
}
