using System.Text.Json.Nodes;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Model;

/// <summary>Every unusable model folder is refused with one line that names the problem.</summary>
public sealed class ModelFolderErrorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-model-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string CopyFixture(Action<JsonObject>? editConfig = null)
    {
        string src = TestPaths.Fixtures("qwen2-small-vocab");
        File.Copy(Path.Combine(src, "model.safetensors"), Path.Combine(_dir, "model.safetensors"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "config.json")))!.AsObject();
        editConfig?.Invoke(config);
        File.WriteAllText(Path.Combine(_dir, "config.json"), config.ToJsonString());
        return _dir;
    }

    private static string LoadError(string dir)
    {
        var e = Assert.ThrowsAny<Exception>(() => DecoderModel.LoadForGeneration(dir).Dispose());
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    [Fact]
    public void MissingFolder() => Assert.Contains("does not exist", LoadError(Path.Combine(_dir, "nowhere")));

    [Fact]
    public void NoConfig()
    {
        CopyFixture();
        File.Delete(Path.Combine(_dir, "config.json"));
        Assert.Contains("no config.json", LoadError(_dir));
    }

    [Fact]
    public void NoWeights()
    {
        CopyFixture();
        File.Delete(Path.Combine(_dir, "model.safetensors"));
        Assert.Contains("has no weights", LoadError(_dir));
    }

    [Fact]
    public void UnknownModelType() =>
        Assert.Contains("model_type 'mamba' is not supported", LoadError(CopyFixture(c => c["model_type"] = "mamba")));

    [Fact]
    public void MissingRequiredKey() =>
        Assert.Contains("required key 'hidden_size' is missing", LoadError(CopyFixture(c => c.Remove("hidden_size"))));

    [Fact]
    public void UnsupportedRopeScaling() =>
        Assert.Contains("rope_scaling type 'yarn' is not supported", LoadError(CopyFixture(c => c["rope_scaling"] = new JsonObject { ["type"] = "yarn", ["factor"] = 4.0 })));

    [Fact]
    public void SlidingWindowInEffect() =>
        Assert.Contains("sliding-window attention", LoadError(CopyFixture(c => { c["use_sliding_window"] = true; c["max_window_layers"] = 1; })));

    [Fact]
    public void ShapeMismatchNamesTheTensor() =>
        Assert.Contains("'model.embed_tokens.weight' has shape [512, 48], config.json implies [512, 64]", LoadError(CopyFixture(c => c["hidden_size"] = 64)));

    [Fact]
    public void MoreLayersThanStoredNamesTheMissingTensor() =>
        Assert.Contains("tensor 'model.layers.3.input_layernorm.weight' is missing", LoadError(CopyFixture(c => c["num_hidden_layers"] = 4)));

    [Fact]
    public void UntiedModelWithoutLmHead()
    {
        CopyFixture();
        string path = Path.Combine(_dir, "model.safetensors");
        List<(string, long[], float[])> kept;
        using (var file = SafetensorsFile.Open(path))
            kept = file.Tensors.Where(t => t.Name != "lm_head.weight").Select(t => (t.Name, t.Shape, file.ReadFloat32(t.Name))).ToList();
        SafetensorsWriter.Write(path, kept);
        Assert.Contains("tensor 'lm_head.weight' is missing and tie_word_embeddings is false", LoadError(_dir));
    }

    [Fact]
    public void MissingTokenizerForChat()
    {
        CopyFixture();
        var e = Assert.Throws<ModelFolderException>(() => ModelFolder.ValidateTokenizer(_dir));
        Assert.Contains("no tokenizer.json", e.Message);
    }
}
