using System.Text.Json.Nodes;
using SharpTune.Engine;
using SharpTune.Export;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Templates;
using SharpTune.Tests.Model;
using SharpTune.Tests.Peft;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Export;

/// <summary>Merging adapters into the base and exporting a Hugging Face folder, against PEFT's merge_and_unload.</summary>
public sealed class ModelExporterTests : IDisposable
{
    private const long FiveGigabytes = 5 * ModelExporter.BytesPerGigabyte;
    private readonly string _dir = LoraTestFolders.NewTempDir("export");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Out(string name) => Path.Combine(_dir, name);

    /// <summary>Every tensor of the exported folder equals PEFT's merged model within 1e-6, same names, shapes and dtype.</summary>
    internal static void AssertEqualsPeftMerge(string exportDir)
    {
        using var expected = SafetensorsCheckpoint.OpenDirectory(TestPaths.Fixtures("lora", "merged"));
        using var actual = SafetensorsCheckpoint.OpenDirectory(exportDir);
        Assert.Equal(expected.Names, actual.Names);
        foreach (string name in expected.Names)
        {
            Assert.Equal(expected.Get(name).Shape, actual.Get(name).Shape);
            Assert.Equal(DType.F32, actual.Get(name).DType);
            float[] e = expected.ReadFloat32(name), a = actual.ReadFloat32(name);
            for (int i = 0; i < e.Length; i++)
                Assert.True(Math.Abs(e[i] - a[i]) <= 1e-6, $"{name}[{i}]: expected {e[i]}, got {a[i]}");
        }
    }

    [Fact]
    public void MergedWeightsEqualPeftMergeAndUnload()
    {
        string export = Out("merged");

        var written = ModelExporter.Export(LoraTestFolders.Base, [LoraTestFolders.Adapter], export, FiveGigabytes, template: null);

        AssertEqualsPeftMerge(export);
        Assert.Equal(["model.safetensors", "config.json", "generation_config.json"], written);
        Assert.Equal(["config.json", "generation_config.json", "model.safetensors"], Directory.GetFiles(export).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (string file in new[] { "config.json", "generation_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(LoraTestFolders.Base, file)), File.ReadAllBytes(Path.Combine(export, file)));
        using var merged = SafetensorsFile.Open(Path.Combine(export, "model.safetensors"));
        Assert.Equal(SafetensorsWriter.PyTorchMetadata, merged.Metadata);
    }

    [Fact]
    public void MergedModelGivesTheLogitsOfTheUnmergedAdapter()
    {
        var fx = new ReferenceFixture("lora");
        string export = Out("merged");
        ModelExporter.Export(LoraTestFolders.Base, [LoraTestFolders.Adapter], export, FiveGigabytes, template: null);
        using var unmerged = DecoderModel.LoadForGeneration(LoraTestFolders.Base, adapterDirectories: [LoraTestFolders.Adapter]);
        using var merged = DecoderModel.LoadForGeneration(export);

        var (_, expected) = unmerged.Evaluate(fx.InputIds, fx.AttentionMask);
        var (_, actual) = merged.Evaluate(fx.InputIds, fx.AttentionMask);

        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4, $"logit {i}: {expected[i]} vs {actual[i]}");
        var top5 = fx.Reference.GetProperty("merged").GetProperty("top5_ids");
        int time = fx.InputIds[0].Length, vocab = merged.Config.VocabSize;
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < time; t++)
            {
                if (fx.AttentionMask[b][t] == 0) continue;
                var ids = actual.AsSpan((b * time + t) * vocab, vocab).ToArray().Select((v, id) => (v, id)).OrderByDescending(p => p.v).Take(5).Select(p => p.id);
                Assert.Equal(ReferenceFixture.IntArray(top5[b][t]), ids);
            }
    }

    [Fact]
    public void SeveralAdaptersMergeInOrderLikeTheyStackUnmerged()
    {
        var fx = new ReferenceFixture("lora");
        string export = Out("both");
        ModelExporter.Export(LoraTestFolders.Base, [LoraTestFolders.Adapter, LoraTestFolders.RsloraAdapter], export, FiveGigabytes, template: null);
        using var unmerged = DecoderModel.LoadForGeneration(LoraTestFolders.Base, adapterDirectories: [LoraTestFolders.Adapter, LoraTestFolders.RsloraAdapter]);
        using var merged = DecoderModel.LoadForGeneration(export);
        using var firstOnly = DecoderModel.LoadForGeneration(LoraTestFolders.Base, adapterDirectories: [LoraTestFolders.Adapter]);

        var (_, expected) = unmerged.Evaluate(fx.InputIds, fx.AttentionMask);
        var (_, actual) = merged.Evaluate(fx.InputIds, fx.AttentionMask);
        var (_, first) = firstOnly.Evaluate(fx.InputIds, fx.AttentionMask);

        Assert.True(expected.Zip(first).Max(p => Math.Abs(p.First - p.Second)) > 1e-2, "the second adapter must matter");
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4, $"logit {i}: {expected[i]} vs {actual[i]}");
    }

    [Fact]
    public void TinyShardSizeWritesAnIndexTheLoaderReads()
    {
        var fx = new ReferenceFixture("lora");
        string single = Out("single"), sharded = Out("sharded");
        ModelExporter.Export(LoraTestFolders.Base, [LoraTestFolders.Adapter], single, FiveGigabytes, template: null);

        var written = ModelExporter.Export(LoraTestFolders.Base, [LoraTestFolders.Adapter], sharded, 100_000, template: null);

        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(sharded, SafetensorsCheckpoint.IndexFileName)))!;
        var map = index["weight_map"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>());
        var shards = map.Values.Distinct().Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(shards.Length + 1 + 2, written.Count);
        Assert.True(shards.Length > 2, $"{shards.Length} shards");
        Assert.Equal($"model-00001-of-{shards.Length:D5}.safetensors", shards[0]);
        Assert.False(File.Exists(Path.Combine(sharded, "model.safetensors")));
        // The embedding (98,304 bytes) comes first in the state dict and fills shard 1 alone; lm_head comes last.
        Assert.Equal(["model.embed_tokens.weight"], map.Where(kv => kv.Value == shards[0]).Select(kv => kv.Key));
        Assert.Equal(shards[^1], map["lm_head.weight"]);
        long total = 0;
        using (var checkpoint = SafetensorsCheckpoint.OpenDirectory(sharded))
            foreach (string name in checkpoint.Names) total += checkpoint.Get(name).ByteSize;
        Assert.Equal(total, index["metadata"]!["total_size"]!.GetValue<long>());
        AssertEqualsPeftMerge(sharded);

        using var fromShards = DecoderModel.LoadForGeneration(sharded);
        using var fromSingle = DecoderModel.LoadForGeneration(single);
        Assert.Equal(fromSingle.Evaluate(fx.InputIds, fx.AttentionMask).Logits, fromShards.Evaluate(fx.InputIds, fx.AttentionMask).Logits);
    }

    [Fact]
    public void FullFineTuneWithoutAdapterIsCopiedExactly()
    {
        string export = Out("copy");

        ModelExporter.Export(TestPaths.Fixtures("qwen2-small-vocab-sharded"), [], export, FiveGigabytes, template: null);

        using var source = SafetensorsCheckpoint.OpenDirectory(TestPaths.Fixtures("qwen2-small-vocab-sharded"));
        using var copy = SafetensorsCheckpoint.OpenDirectory(export);
        Assert.Equal(source.Names, copy.Names);
        foreach (string name in source.Names) Assert.True(source.Bytes(name).SequenceEqual(copy.Bytes(name)), name);
        Assert.True(File.Exists(Path.Combine(export, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(export, SafetensorsCheckpoint.IndexFileName)));
    }

    [Fact]
    public void Bf16BaseMergesInFp32AndStoresBf16()
    {
        string tiny = TestPaths.Fixtures("qwen2-tiny");
        string adapter = LoraTestFolders.WriteAdapter(Out("adapter"), 2, [LoraTestFolders.Pair("model.layers.0.mlp.up_proj", 2, 64, 176, 0.05f)]);
        string export = Out("tiny");

        ModelExporter.Export(tiny, [adapter], export, FiveGigabytes, template: null);

        using var source = SafetensorsCheckpoint.OpenDirectory(tiny);
        using var merged = SafetensorsCheckpoint.OpenDirectory(export);
        const string name = "model.layers.0.mlp.up_proj.weight";
        Assert.Equal(DType.BF16, merged.Get(name).DType);
        float[] w = source.ReadFloat32(name), m = merged.ReadFloat32(name);
        // scaling = alpha / r = 2; B·A = r · 0.05² everywhere.
        float delta = 2f * (2 * 0.05f * 0.05f);
        for (int i = 0; i < w.Length; i++)
        {
            float exact = w[i] + delta;
            Assert.Equal(m[i], BFloat16.ToSingle(BFloat16.FromSingle(m[i])));
            Assert.True(Math.Abs(m[i] - exact) <= Math.Abs(exact) / 256, $"{name}[{i}]: {exact} stored as {m[i]}");
        }
        Assert.True(source.Bytes("model.layers.0.mlp.down_proj.weight").SequenceEqual(merged.Bytes("model.layers.0.mlp.down_proj.weight")));
        Assert.False(merged.Contains("lm_head.weight"));
    }

    [Fact]
    public void AChosenDtypeConvertsEveryTensorOfTheBf16Export_AndConfigSaysSo()
    {
        string tiny = TestPaths.Fixtures("qwen2-tiny");
        string adapter = LoraTestFolders.WriteAdapter(Out("adapter"), 2, [LoraTestFolders.Pair("model.layers.0.mlp.up_proj", 2, 64, 176, 0.05f)]);
        string asStored = Out("bf16");
        ModelExporter.Export(tiny, [adapter], asStored, FiveGigabytes, template: null);
        using var reference = SafetensorsCheckpoint.OpenDirectory(asStored);

        foreach (var (dtype, torchDtype) in new[] { (DType.F32, "float32"), (DType.F16, "float16") })
        {
            string export = Out(torchDtype);
            ModelExporter.Export(tiny, [adapter], export, FiveGigabytes, template: null, storeAs: dtype);
            using var converted = SafetensorsCheckpoint.OpenDirectory(export);
            Assert.Equal(reference.Names, converted.Names);
            foreach (string name in reference.Names)
            {
                Assert.Equal(dtype, converted.Get(name).DType);
                Assert.Equal(reference.Get(name).Shape, converted.Get(name).Shape);
                // The bf16 export's values (the merged tensor rounded to bf16 as PEFT merges in bf16), in the new dtype.
                float[] expected = reference.ReadFloat32(name), actual = converted.ReadFloat32(name);
                for (int i = 0; i < expected.Length; i++)
                    Assert.Equal(dtype == DType.F32 ? expected[i] : (float)(Half)expected[i], actual[i]);
            }
            Assert.Equal(torchDtype, JsonNode.Parse(File.ReadAllText(Path.Combine(export, "config.json")))!["torch_dtype"]!.GetValue<string>());
        }
        Assert.Equal("bfloat16", JsonNode.Parse(File.ReadAllText(Path.Combine(asStored, "config.json")))!["torch_dtype"]!.GetValue<string>());
        Assert.Throws<ArgumentException>(() => ModelExporter.Export(tiny, [adapter], Out("int8"), FiveGigabytes, template: null, storeAs: DType.I8));
        Assert.False(Directory.Exists(Out("int8")));
    }

    [Fact]
    public void ModulesToSaveTensorIsWrittenInPlaceOfTheBase()
    {
        float[] replacement = Enumerable.Range(0, 512 * 48).Select(i => i * 1e-3f).ToArray();
        string adapter = LoraTestFolders.WriteAdapter(Out("adapter"), 8, [], [("lm_head.weight", [512, 48], replacement)], ["lm_head"]);
        string export = Out("export");

        ModelExporter.Export(LoraTestFolders.Base, [LoraTestFolders.Adapter, adapter], export, FiveGigabytes, template: null);

        using var merged = SafetensorsCheckpoint.OpenDirectory(export);
        using var peft = SafetensorsCheckpoint.OpenDirectory(TestPaths.Fixtures("lora", "merged"));
        Assert.Equal(replacement, merged.ReadFloat32("lm_head.weight"));
        Assert.Equal(peft.ReadFloat32("model.layers.2.mlp.down_proj.weight"), merged.ReadFloat32("model.layers.2.mlp.down_proj.weight"), (a, b) => Math.Abs(a - b) <= 1e-6);
    }

    [Fact]
    public void RefusesToExportIntoTheBaseFolder()
    {
        string copy = LoraTestFolders.ChatReadyBase(Out("base"));
        byte[] weights = File.ReadAllBytes(Path.Combine(copy, "model.safetensors"));

        var error = Assert.Throws<ArgumentException>(() => ModelExporter.Export(copy, [LoraTestFolders.Adapter], copy + "/", FiveGigabytes, template: null));

        Assert.Equal($"export_dir '{copy}/' is the base model folder; export to a new folder so the base stays intact", error.Message);
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(copy, "model.safetensors")));
    }

    [Fact]
    public void MismatchedAdapterWritesNothing()
    {
        string adapter = LoraTestFolders.WriteAdapter(Out("adapter"), 4, [LoraTestFolders.Pair("model.layers.0.self_attn.o_proj", 4, 96, 48)]);
        string export = Out("export");

        var error = Assert.Throws<InvalidDataException>(() => ModelExporter.Export(LoraTestFolders.Base, [adapter], export, FiveGigabytes, template: null));

        Assert.Contains("module 'model.layers.0.self_attn.o_proj' has lora_A [4, 96]", error.Message);
        Assert.False(Directory.Exists(export));
    }

    [Fact]
    public void TemplateStopTokenBecomesTheEosOfGenerationConfig()
    {
        string chatBase = LoraTestFolders.ChatReadyBase(Out("base"));
        string export = Out("export");

        var written = ModelExporter.Export(chatBase, [LoraTestFolders.Adapter], export, FiveGigabytes, ChatTemplates.ForModel("qwen", chatBase));

        Assert.Equal(["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"], written);
        foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(chatBase, file)), File.ReadAllBytes(Path.Combine(export, file)));
        // qwen replaces the eos with <|im_end|>; the base's own eos id (2) stays a stop token; the rest is kept.
        Assert.Equal("""
            {
              "bos_token_id": 1,
              "do_sample": true,
              "eos_token_id": [
                258,
                2
              ],
              "pad_token_id": 0,
              "repetition_penalty": 1.1,
              "temperature": 0.7,
              "top_k": 20,
              "top_p": 0.8,
              "transformers_version": "4.40.2"
            }

            """.ReplaceLineEndings("\n"), File.ReadAllText(Path.Combine(export, "generation_config.json")));
        AssertEqualsPeftMerge(export);
    }

    [Fact]
    public void SamplingSettingsSwitchSamplingOnAndThePadFallsBackToTheEos()
    {
        string chatBase = LoraTestFolders.ChatReadyBase(Out("base"));
        File.WriteAllText(Path.Combine(chatBase, "generation_config.json"), """{"temperature": 0.6, "top_k": 5}""");
        var config = ModelConfig.Load(Path.Combine(chatBase, "config.json"));

        string json = ExportGenerationConfig.Build(chatBase, config, ChatTemplates.ForModel("qwen", chatBase));

        var root = JsonNode.Parse(json)!.AsObject();
        Assert.Equal(["do_sample", "eos_token_id", "pad_token_id", "temperature", "top_k"], root.Select(kv => kv.Key));
        Assert.True(root["do_sample"]!.GetValue<bool>());
        Assert.Equal([258, 2], root["eos_token_id"]!.AsArray().Select(n => n!.GetValue<int>()));
        Assert.Equal(258, root["pad_token_id"]!.GetValue<int>());
    }
}
