using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Tests.Model;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Peft;

/// <summary>Adapters that do not fit the base model are refused with the module named, before anything changes.</summary>
public sealed class AdapterValidationTests : IDisposable
{
    private readonly string _dir = LoraTestFolders.NewTempDir("lora-validation");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static InvalidDataException Refused(string adapter)
    {
        using var model = DecoderModel.LoadForGeneration(LoraTestFolders.Base);
        var fx = new ReferenceFixture("qwen2-small-vocab");
        var (_, before) = model.Evaluate(fx.InputIds, fx.AttentionMask);
        var error = Assert.Throws<InvalidDataException>(() => model.LoadAdapter(adapter));
        Assert.Empty(model.Adapters);
        var (_, after) = model.Evaluate(fx.InputIds, fx.AttentionMask);
        Assert.Equal(before, after);
        return error;
    }

    [Fact]
    public void WrongInFeaturesNamesTheModuleAndBothShapes()
    {
        string adapter = LoraTestFolders.WriteAdapter(_dir, 8,
            [LoraTestFolders.Pair("model.layers.0.self_attn.q_proj", 8, 48, 48), LoraTestFolders.Pair("model.layers.1.mlp.down_proj", 8, 48, 48)]);

        var error = Refused(adapter);

        Assert.Equal($"{adapter}: module 'model.layers.1.mlp.down_proj' has lora_A [8, 48] and lora_B [48, 8], but the base model {LoraTestFolders.Base} " +
            "has 'model.layers.1.mlp.down_proj.weight' [48, 96]; was the adapter trained on another model?", error.Message);
    }

    [Fact]
    public void UnknownModuleIsNamed()
    {
        string adapter = LoraTestFolders.WriteAdapter(_dir, 4, [LoraTestFolders.Pair("model.layers.3.self_attn.q_proj", 4, 48, 48)]);

        var error = Refused(adapter);

        Assert.Equal($"{adapter}: module 'model.layers.3.self_attn.q_proj' is not a Linear layer of the base model {LoraTestFolders.Base}", error.Message);
    }

    [Fact]
    public void ReplacedTensorOfAnotherShapeIsNamed()
    {
        string adapter = LoraTestFolders.WriteAdapter(_dir, 4, [LoraTestFolders.Pair("model.layers.0.self_attn.q_proj", 4, 48, 48)],
            [("model.embed_tokens.weight", [256, 48], new float[256 * 48])], ["embed_tokens"]);

        var error = Refused(adapter);

        Assert.Equal($"{adapter}: modules_to_save tensor 'model.embed_tokens.weight' is [256, 48], but the base model {LoraTestFolders.Base} has [512, 48]", error.Message);
    }

    [Fact]
    public void MissingFilesAreNamed()
    {
        string noConfig = Path.Combine(_dir, "no-config");
        Directory.CreateDirectory(noConfig);
        File.Copy(Path.Combine(LoraTestFolders.Adapter, LoraAdapterFile.FileName), Path.Combine(noConfig, LoraAdapterFile.FileName));
        string noWeights = Path.Combine(_dir, "no-weights");
        Directory.CreateDirectory(noWeights);
        File.Copy(Path.Combine(LoraTestFolders.Adapter, LoraConfig.FileName), Path.Combine(noWeights, LoraConfig.FileName));

        var missingConfig = Assert.Throws<FileNotFoundException>(() => DecoderModel.LoadForGeneration(LoraTestFolders.Base, adapterDirectories: [noConfig]));
        var missingWeights = Assert.Throws<FileNotFoundException>(() => DecoderModel.LoadForGeneration(LoraTestFolders.Base, adapterDirectories: [noWeights]));
        var missingFolder = Assert.Throws<DirectoryNotFoundException>(() => LoraAdapter.Load(Path.Combine(_dir, "absent")));

        Assert.Equal($"{noConfig}: adapter_config.json is missing; is this a PEFT adapter folder?", missingConfig.Message);
        Assert.StartsWith($"{noWeights}: adapter_model.safetensors is missing", missingWeights.Message);
        Assert.Equal($"adapter folder '{Path.Combine(_dir, "absent")}' does not exist", missingFolder.Message);
    }

    [Fact]
    public void TiedModelHasNoLmHeadToWrap()
    {
        string tied = TestPaths.Fixtures("qwen2-tiny");
        using var model = DecoderModel.LoadForGeneration(tied);
        Assert.True(model.Config.TieWordEmbeddings);
        string adapter = LoraTestFolders.WriteAdapter(_dir, 2, [LoraTestFolders.Pair("lm_head", 2, model.Config.HiddenSize, model.Config.VocabSize)]);

        var error = Assert.Throws<InvalidDataException>(() => model.LoadAdapter(adapter));

        Assert.Equal($"{adapter}: module 'lm_head' is not a Linear layer of the base model {tied}", error.Message);
    }
}
