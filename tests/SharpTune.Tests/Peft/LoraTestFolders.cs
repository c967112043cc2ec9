using System.Text.Json.Nodes;
using SharpTune.Peft.Lora;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Peft;

/// <summary>Folders the LoRA and export tests build from the fixtures: chat-ready bases and hand-made adapters.</summary>
internal static class LoraTestFolders
{
    public const int EndOfTextId = 256, ImStartId = 257, ImEndId = 258;

    public static string Base => TestPaths.Fixtures("qwen2-small-vocab");
    public static string Adapter => TestPaths.Fixtures("lora");
    public static string RsloraAdapter => TestPaths.Fixtures("lora", "rslora");

    public static string NewTempDir(string purpose) => Directory.CreateTempSubdirectory($"sharptune-{purpose}-").FullName;

    /// <summary>
    /// The qwen2-small-vocab model with a byte-level tokenizer that fits its 512-token vocabulary (ids 0-255 are the
    /// bytes, then &lt;|endoftext|&gt;, &lt;|im_start|&gt;, &lt;|im_end|&gt;), so chat and generate can run on it.
    /// </summary>
    public static string ChatReadyBase(string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (string file in new[] { "config.json", "generation_config.json", "model.safetensors" })
            File.Copy(Path.Combine(Base, file), Path.Combine(dir, file));
        var vocab = new JsonObject();
        for (int value = 0; value < 256; value++)
            vocab[ByteLevelAlphabet.ByteToChar((byte)value).ToString()] = value;
        var root = new JsonObject
        {
            ["added_tokens"] = new JsonArray(Special(EndOfTextId, "<|endoftext|>"), Special(ImStartId, "<|im_start|>"), Special(ImEndId, "<|im_end|>")),
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), root.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}""");
        return dir;
    }

    private static JsonObject Special(int id, string content) => new()
    {
        ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
    };

    /// <summary>An adapter folder with the given pairs and replaced tensors, written the way PEFT lays them out.</summary>
    public static string WriteAdapter(string dir, int rank, IEnumerable<LoraPair> pairs, IEnumerable<(string Name, long[] Shape, float[] Data)>? replaced = null,
        IReadOnlyList<string>? modulesToSave = null)
    {
        var pairList = pairs.ToList();
        new LoraConfig
        {
            Rank = rank,
            Alpha = 2 * rank,
            TargetModules = pairList.Select(p => p.ModulePath.Split('.')[^1]).Distinct().ToArray(),
            ModulesToSave = modulesToSave ?? [],
        }.Save(dir);
        LoraAdapterFile.Save(dir, pairList, replaced);
        return dir;
    }

    public static LoraPair Pair(string module, int rank, int inFeatures, int outFeatures, float value = 0.01f) =>
        new(module, Enumerable.Repeat(value, rank * inFeatures).ToArray(), Enumerable.Repeat(value, outFeatures * rank).ToArray(), rank, inFeatures, outFeatures);
}
