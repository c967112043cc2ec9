using System.Text.Json;
using System.Text.Json.Nodes;
using System.Runtime.InteropServices;
using SharpTune.Engine;
using SharpTune.IO;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Peft;
using SharpTune.Templates;

using SharpTune.Training.Model;

namespace SharpTune.Export;

/// <summary>
/// Writes a standalone Hugging Face model folder from a base model and zero or more adapters merged into it (LoRA, IA3: see <see cref="AdapterMerge"/>)
/// (LLaMA-Factory's export): weights in each base tensor's dtype, sharded as transformers' save_pretrained shards
/// them (with model.safetensors.index.json when there is more than one shard), config.json and the tokenizer files
/// copied, and generation_config.json either copied or, given the chat template, with the template's stop tokens as
/// eos. With no adapters it re-shards and copies a model folder as is (a full fine-tune's output). The folder is
/// written under a temporary name next to export_dir and renamed into place last, replacing an earlier export there
/// (<see cref="AtomicFile.ReplaceDirectory"/>), so export_dir is always a whole export or absent, never weights
/// without their tokenizer.
/// </summary>
public static class ModelExporter
{
    /// <summary>transformers reads "5GB" as 5·10⁹ bytes, so LLaMA-Factory's export_size is in decimal gigabytes.</summary>
    public const long BytesPerGigabyte = 1_000_000_000;

    /// <summary>Tokenizer files copied when present, as tokenizer.save_pretrained would leave them.</summary>
    public static readonly IReadOnlyList<string> TokenizerFiles =
        ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja"];

    /// <summary>
    /// The base folder's remote code (ChatGLM's configuration_chatglm.py, modeling_chatglm.py, tokenization_chatglm.py),
    /// which its config.json's auto_map names: copied as they are, so Python loads the export with trust_remote_code.
    /// </summary>
    private static bool IsRemoteCode(string fileName) => fileName.EndsWith(".py", StringComparison.Ordinal);

    /// <summary>
    /// Merges <paramref name="adapterDirs"/> (in order) into the model in <paramref name="baseDir"/> and writes the
    /// result to <paramref name="exportDir"/>, which must be absent, empty or an earlier export (only files an export
    /// writes). Returns the names of the files written.
    /// </summary>
    /// <param name="maxShardBytes">The largest shard in bytes (see <see cref="BytesPerGigabyte"/>).</param>
    /// <param name="template">The chat template the model is used with; null copies generation_config.json unchanged.</param>
    /// <param name="cancellation">Checked before each tensor; a cancelled export leaves <paramref name="exportDir"/> as it was.</param>
    /// <param name="tensorExported">Called with (tensors done, tensors in all) as each tensor is produced for its shard.</param>
    /// <param name="valueHead">A reward model's value_head.safetensors, copied beside the merged weights (it is not part of them).</param>
    /// <param name="storeAs">
    /// F32, F16 or BF16: every floating-point tensor is written in it and config.json's torch_dtype says so (as
    /// transformers' <c>model.to(dtype)</c> before save_pretrained); null keeps each tensor's own dtype.
    /// </param>
    public static IReadOnlyList<string> Export(string baseDir, IReadOnlyList<string> adapterDirs, string exportDir, long maxShardBytes, ChatTemplate? template,
        CancellationToken cancellation = default, Action<int, int>? tensorExported = null, string? valueHead = null, DType? storeAs = null)
    {
        if (maxShardBytes <= 0) throw new ArgumentException($"the maximum shard size must be positive, got {maxShardBytes} bytes");
        if (storeAs is { } target && !IsFloat(target)) throw new ArgumentException($"an export is written in F32, F16 or BF16, not {target}");
        if (SamePath(baseDir, exportDir))
            throw new ArgumentException($"export_dir '{exportDir}' is the base model folder; export to a new folder so the base stays intact");
        foreach (string adapter in adapterDirs)
            if (SamePath(adapter, exportDir))
                throw new ArgumentException($"export_dir '{exportDir}' is the adapter folder; export to a new folder");
        ModelFolder.Validate(baseDir);
        var config = ModelConfig.Load(ModelFolder.ConfigPath(baseDir));
        var adapters = adapterDirs.Select(PeftAdapterFolders.Read).ToArray();

        using var checkpoint = SafetensorsCheckpoint.OpenDirectory(baseDir);
        var backend = CpuBackend.CreateDefault();
        var merge = new AdapterMerge(adapters, checkpoint, baseDir, config, backend);
        // An adapter that replaces embed_tokens or lm_head of a tied model (PEFT's modules_to_save) changes one of the
        // two; the export keeps both, untied, so the merged model computes what the adapter did (save_pretrained
        // would drop lm_head and reloading would tie it to the new embedding).
        var tiedNames = TiedNames(config);
        bool untie = config.TieWordEmbeddings && adapters.Any(a => tiedNames.Any(a.ReplacedTensors.ContainsKey));
        // Generation settings are resolved before anything is written, so a template the tokenizer cannot express
        // leaves no half-exported folder behind.
        string? generationConfig = template is null ? null : ExportGenerationConfig.Build(baseDir, config, template);

        CheckReplaceable(exportDir);

        string final = Path.TrimEndingDirectorySeparator(Path.GetFullPath(exportDir));
        string parent = Path.GetDirectoryName(final)!;
        Directory.CreateDirectory(parent);
        AtomicFile.RemoveStaleTemporaries(parent, ofName: Path.GetFileName(final));
        string temp = AtomicFile.TemporarySibling(final);
        Directory.CreateDirectory(temp);
        try
        {
            var names = StateDictOrder(config, checkpoint, untie).ToList();
            var tensors = names.Select((name, i) => Tensor(checkpoint, name, tiedNames[0], merge, storeAs,
                cancellation.ThrowIfCancellationRequested, () => tensorExported?.Invoke(i + 1, names.Count))).ToArray();
            var written = new List<string>(SafetensorsWriter.WriteSharded(temp, tensors, maxShardBytes));
            FaultInjection.Point("export-weights-written");

            if (untie || storeAs is not null)
            {
                var json = JsonNode.Parse(File.ReadAllText(ModelFolder.ConfigPath(baseDir)))!;
                if (untie) json["tie_word_embeddings"] = false;
                if (storeAs is { } dtype) json["torch_dtype"] = TorchDtype(dtype);
                AtomicFile.WriteText(ModelFolder.ConfigPath(temp), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
                written.Add("config.json");
            }
            else
            {
                Copy(baseDir, temp, "config.json", written);
            }
            foreach (string file in TokenizerFiles) Copy(baseDir, temp, file, written);
            foreach (string file in Directory.EnumerateFiles(baseDir).Select(p => Path.GetFileName(p)).Where(IsRemoteCode).Order(StringComparer.Ordinal))
                Copy(baseDir, temp, file, written);
            if (generationConfig is not null)
            {
                AtomicFile.WriteText(ModelFolder.GenerationConfigPath(temp), generationConfig);
                written.Add("generation_config.json");
            }
            else
            {
                Copy(baseDir, temp, "generation_config.json", written);
            }
            if (valueHead is not null)
            {
                AtomicFile.Copy(valueHead, Path.Combine(temp, ValueHead.FileName));
                written.Add(ValueHead.FileName);
            }
            AtomicFile.ReplaceDirectory(temp, final);
            return written;
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
    }

    private static bool IsFloat(DType dtype) => dtype is DType.F32 or DType.F16 or DType.BF16;

    /// <summary>The values as <paramref name="dtype"/> stores them, widened back to fp32 in place.</summary>
    private static float[] RoundTo(float[] values, DType dtype)
    {
        for (int i = 0; i < values.Length; i++)
            values[i] = dtype switch
            {
                DType.BF16 => BFloat16.ToSingle(BFloat16.FromSingle(values[i])),
                DType.F16 => (float)(Half)values[i],
                _ => values[i],
            };
        return values;
    }

    /// <summary>config.json's torch_dtype for a dtype, as transformers writes it.</summary>
    private static string TorchDtype(DType dtype) => dtype switch
    {
        DType.F32 => "float32",
        DType.F16 => "float16",
        _ => "bfloat16",
    };

    /// <summary>The two tensors of a tied pair: the embedding (the one a tied checkpoint stores) and lm_head.</summary>
    private static string[] TiedNames(ModelConfig c) => [c.Description.EmbeddingTensor, c.Description.LmHeadTensor];

    /// <summary>
    /// Refuses an export_dir that holds anything an export does not write (a folder of other files, another model's
    /// extras): replacing it would delete them.
    /// </summary>
    private static void CheckReplaceable(string exportDir)
    {
        if (!Directory.Exists(exportDir)) return;
        foreach (string entry in Directory.EnumerateFileSystemEntries(exportDir))
        {
            string name = Path.GetFileName(entry);
            bool exported = File.Exists(entry) && (ExportedFiles.Contains(name) || IsRemoteCode(name) || SafetensorsWriter.IsWeightsFile(name) || AtomicFile.IsTemporary(name));
            if (!exported)
                throw new IOException($"export_dir {exportDir} holds {name}, which an export does not write; an export replaces the whole folder, so choose another export_dir or remove it");
        }
    }

    /// <summary>The names an export writes besides its shards.</summary>
    private static readonly HashSet<string> ExportedFiles = new(["config.json", "generation_config.json", ValueHead.FileName, .. TokenizerFiles], StringComparer.Ordinal);

    /// <param name="storeAs">The dtype floating-point tensors are written in, or null for their own.</param>
    /// <param name="before">Runs before the tensor is produced (the cancellation check), <paramref name="after"/> once it is.</param>
    private static (string Name, DType DType, long[] Shape, ReadOnlyMemory<byte> Data) Tensor(
        SafetensorsCheckpoint checkpoint, string name, string embeddingName, AdapterMerge merge, DType? storeAs,
        Action before, Action after)
    {
        // An untied lm_head starts from the tied checkpoint's only copy, the embedding.
        string stored = checkpoint.Contains(name) ? name : embeddingName;
        var info = checkpoint.Get(stored);
        // The merge rounds to the tensor's own dtype, as PEFT merges in the loaded weights' dtype; the conversion follows.
        var dtype = storeAs is { } target && IsFloat(info.DType) ? target : info.DType;
        int length = checked((int)(info.ByteSize / DTypeInfo.SizeOf(info.DType) * DTypeInfo.SizeOf(dtype)));
        Func<byte[]> produce = merge.Changes(name)
            ? () => ToArray(SafetensorsWriter.EncodeFloat32(RoundTo(
                merge.Merge(name, checkpoint.ReadFloat32(stored), info.DType, other => (checkpoint.ReadFloat32(other), checkpoint.Get(other).DType)), info.DType), dtype))
            : dtype == info.DType
                ? () => checkpoint.Bytes(stored).ToArray()
                : () => ToArray(SafetensorsWriter.EncodeFloat32(checkpoint.ReadFloat32(stored), dtype));
        return (name, dtype, info.Shape, new LazyBytes(length, () =>
        {
            before();
            byte[] bytes = produce();
            after();
            return bytes;
        }).Memory);
    }

    private static byte[] ToArray(ReadOnlyMemory<byte> memory) =>
        MemoryMarshal.TryGetArray(memory, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : memory.ToArray();

    /// <summary>
    /// The checkpoint's tensors in the order of the transformers model's state_dict (module registration order), which
    /// decides how save_pretrained fills shards; tensors the model does not name follow in name order. A tied lm_head is
    /// dropped, as save_pretrained drops the shared tensor.
    /// </summary>
    private static IEnumerable<string> StateDictOrder(ModelConfig c, SafetensorsCheckpoint checkpoint, bool untie)
    {
        var order = c.Description.StateDictOrder(c.NumLayers).ToList();
        var known = new HashSet<string>(order, StringComparer.Ordinal);
        string lmHead = c.Description.LmHeadTensor;
        var names = order.Where(n => checkpoint.Contains(n) || untie && n == lmHead).Concat(checkpoint.Names.Where(n => !known.Contains(n)));
        return c.TieWordEmbeddings && !untie ? names.Where(n => n != lmHead) : names;
    }

    private static void Copy(string fromDir, string toDir, string file, List<string> written)
    {
        string source = Path.Combine(fromDir, file);
        if (!File.Exists(source)) return;
        AtomicFile.Copy(source, Path.Combine(toDir, file));
        written.Add(file);
    }

    private static bool SamePath(string a, string b) =>
        string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(a)), Path.TrimEndingDirectorySeparator(Path.GetFullPath(b)),
            OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
}
