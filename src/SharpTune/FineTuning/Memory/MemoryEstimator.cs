using SharpTune.Engine;
using SharpTune.FineTuning;
using SharpTune.Hparams;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Peft;
using SharpTune.Peft.Ia3;
using SharpTune.Peft.Lora;
using SharpTune.Peft.PromptLearning;
using SharpTune.Quantization;
using SharpTune.Training.Model;
using SharpTune.Training.Optim;

namespace SharpTune.FineTuning.Memory;

/// <summary>One row of an estimate: what holds the memory, how many bytes, and a short note.</summary>
public sealed record MemoryComponent(string Name, long Bytes, string Note = "");

/// <summary>A run's estimated peak resident memory, component by component.</summary>
public sealed record MemoryEstimate(IReadOnlyList<MemoryComponent> Components)
{
    public long TotalBytes => Components.Sum(c => c.Bytes);
}

/// <summary>What a training run's memory depends on, as a config sets it.</summary>
public sealed record TrainingMemorySetup(
    FinetuningArguments Finetuning,
    IReadOnlyList<string> AdapterDirectories,
    QuantizationOptions? Quantization,
    bool GradientCheckpointing,
    int CutoffLen,
    int BatchSize,
    int GradientAccumulationSteps,
    string Optim,
    int EvalBatchSize = 0,
    int SequencesPerExample = 1,
    PreferenceReference Reference = PreferenceReference.None,
    string? ReferenceModelDirectory = null)
{
    /// <summary>The setup a config trains with; EvalBatchSize is per_device_eval_batch_size when the run evaluates, else 0.</summary>
    public static TrainingMemorySetup From(SftConfig cfg)
    {
        var f = cfg.Finetuning;
        bool referenced = f.UseRefModel || f.Stage is "kto" or "ppo";
        var reference = !referenced ? PreferenceReference.None
            // TRL's PPO step disables an adapter policy's adapter for the reference, ref_model or not (Workflows/PpoStage).
            : f.Stage == "ppo" && f.FinetuningType is not (FinetuningType.Full or FinetuningType.Freeze) ? PreferenceReference.TunersDisabled
            : f.RefModel is not null ? PreferenceReference.OwnModel
            : f.FinetuningType == FinetuningType.Lora ? PreferenceReference.TunersDisabled
            : PreferenceReference.StartingWeightsCopy;
        return new(f, cfg.Model.AdapterNameOrPath, cfg.Model.Quantization,
            cfg.Training.GradientCheckpointing, cfg.Data.CutoffLen, cfg.Training.PerDeviceTrainBatchSize, cfg.Training.GradientAccumulationSteps,
            cfg.Training.Optim, cfg.Training.DoEval || cfg.Training.EvalStrategy != "no" ? cfg.Training.PerDeviceEvalBatchSize : 0,
            // Pairwise batches hold each pair's chosen and rejected sequence.
            f.Stage is "dpo" or "rm" ? 2 : 1, reference, reference == PreferenceReference.OwnModel ? f.RefModel : null);
    }

    /// <summary>Sequences per step buffer: evaluation batches go through the same buffers, which grow to the larger batch.</summary>
    public int BufferBatch => Math.Max(BatchSize, EvalBatchSize) * SequencesPerExample;
}

/// <summary>The reference model of a preference stage, as the stage builds it (see <c>Workflows/PreferenceStage</c>).</summary>
public enum PreferenceReference
{
    /// <summary>No reference (not a preference stage, or orpo and simpo).</summary>
    None,
    /// <summary>The policy with its tuners disabled: nothing more.</summary>
    TunersDisabled,
    /// <summary>Full and freeze tuning: a frozen copy of the starting weights.</summary>
    StartingWeightsCopy,
    /// <summary>ref_model, loaded for evaluation only.</summary>
    OwnModel,
}

/// <summary>
/// The memory pre-flight: a training run's peak resident memory estimated from config.json and the safetensors
/// headers alone, before any weight is read. Each component comes from the numbers the training code allocates
/// (<see cref="DecoderModel.ActivationBytes"/>, <see cref="DecoderModel.LossChunkBytes"/>,
/// <see cref="LoraLayer.CacheBytes"/>, <see cref="OptimizerNames.StateBytes"/>,
/// <see cref="Quantizer.StorageBytesFor"/>, the GEMM's packing buffer), so the estimate follows the code.
/// The checkpoint stays memory-mapped for the whole run and every page of a weight the step reads stays resident
/// once touched, so the mapped weights count in full (a frozen, untied embedding, of which only the rows of the
/// data's tokens are read, is counted in full too: an upper bound); quantised projections release their mapped
/// pages (<see cref="MappedQuantization"/>); a trained or merged matrix is an fp32 copy next to its mapped pages,
/// which were read once to make it.
/// </summary>
public static class MemoryEstimator
{
    /// <summary>
    /// The .NET runtime, the parsed Qwen tokenizer, a small dataset and the code: `sharptune train` of the tiny preset
    /// (20 MB of weights) at cutoff_len 16, batch 1 peaks at ~148 MB, ~38 MB of which is the runtime alone
    /// (`sharptune env`); the rest of that run is what this estimate counts for its model and batch.
    /// </summary>
    public const long RuntimeBytes = 120L << 20;

    /// <summary>Estimates a run on the model folder's config.json and safetensors headers (no weight is read).</summary>
    public static MemoryEstimate ForModelFolder(string modelDirectory, TrainingMemorySetup setup)
    {
        ModelFolder.Validate(modelDirectory);
        var config = ModelConfig.Load(ModelFolder.ConfigPath(modelDirectory));
        List<TensorInfo> tensors;
        // Opening maps the files and validates their headers; no page of tensor data is read.
        using (var checkpoint = SafetensorsCheckpoint.OpenDirectory(modelDirectory))
            tensors = checkpoint.Names.Select(checkpoint.Get).ToList();
        return Estimate(config, tensors, setup, modelDirectory);
    }

    /// <summary>The estimate for a model of this config whose checkpoint holds these tensors.</summary>
    /// <param name="source">The model folder, named in errors.</param>
    public static MemoryEstimate Estimate(ModelConfig config, IReadOnlyList<TensorInfo> tensors, TrainingMemorySetup setup, string source)
    {
        TrainableModels.CheckCombination(setup.Finetuning, setup.AdapterDirectories, setup.Quantization);
        if (setup.CutoffLen <= 0 || setup.BatchSize <= 0)
            throw new ArgumentException($"cutoff_len and per_device_train_batch_size must be positive, got {setup.CutoffLen} and {setup.BatchSize}");
        var used = UsedTensors(config, tensors, source);
        var method = setup.Finetuning.FinetuningType;
        DType storedDType = used.First(t => t.Name == config.Description.EmbeddingTensor).DType;
        // A prompt-learning method's positions come before every sequence, outside cutoff_len (PEFT's forward adds them).
        int virtualTokens = setup.Finetuning.IsPromptLearning ? setup.Finetuning.NumVirtualTokens ?? 0 : 0;
        int rows = checked(setup.BufferBatch * (setup.CutoffLen + virtualTokens));
        int labelRows = Math.Max(1, setup.BufferBatch * (setup.CutoffLen - 1));

        // Which matrices become fp32 (trained, or with an adapter merged in) and which values are trained.
        var trained = new HashSet<string>(StringComparer.Ordinal);
        var materialized = new HashSet<string>(StringComparer.Ordinal);
        var parameterLengths = new List<int>();
        var adapters = new List<(int In, int Out, int Rank, float Dropout)>();
        long ia3CacheBytes = 0, adapterCacheBytes = 0;
        bool doraAdapters = false, mutatedInit = false;
        switch (method)
        {
            case FinetuningType.Full:
                trained.UnionWith(used.Select(t => t.Name));
                break;
            case FinetuningType.Freeze:
                trained.UnionWith(FreezeSelection.TrainableNames(used.Select(t => t.Name).ToArray(), config.NumLayers, setup.Finetuning));
                break;
            case FinetuningType.BitFit:
                // Every bias and the extra modules' vectors, as BitFitFineTuning picks them.
                trained.UnionWith(used.Where(t => !t.IsMatrix && (t.Name.EndsWith(".bias", StringComparison.Ordinal)
                    || setup.Finetuning.BitFitExtraModules.Any(m => PeftConfigFile.ModuleMatches(t.Name[..t.Name.LastIndexOf('.')], m)))).Select(t => t.Name));
                break;
            case FinetuningType.Adapter:
                // Per layer a bottleneck after o_proj and after down_proj: down [b × hidden] + b, up [hidden × b] + hidden;
                // each keeps the projection's output and its bottleneck activations for a batch's rows.
                int width = Math.Max(1, (int)Math.Floor(config.HiddenSize / setup.Finetuning.AdapterReductionFactor));
                foreach (var t in used.Where(t => t.IsMatrix && t.Module is "o_proj" or "down_proj"))
                {
                    parameterLengths.AddRange([width * config.HiddenSize, width, config.HiddenSize * width, config.HiddenSize]);
                    adapterCacheBytes += sizeof(float) * (long)rows * (config.HiddenSize + 3 * width);
                }
                break;
            case FinetuningType.Ia3:
                // One vector per targeted Linear: its input's width on a feed-forward module, its output's otherwise;
                // each layer keeps the side it scales for a batch's rows.
                var ia3 = setup.Finetuning;
                var ia3Targets = ia3.Ia3Target is ["all"] ? config.Description.LinearNames : ia3.Ia3Target;
                foreach (var t in used.Where(t => t.IsMatrix && t.Module is not null && ia3Targets.Contains(t.Module)))
                {
                    bool feedforward = ia3.Ia3Feedforward.Contains(t.Module!);
                    parameterLengths.Add((int)t.Info.Shape[feedforward ? 1 : 0]);
                    ia3CacheBytes += Ia3Layer.CacheBytes(rows, (int)t.Info.Shape[1], (int)t.Info.Shape[0], feedforward);
                }
                break;
            case FinetuningType.PromptTuning or FinetuningType.PTuning or FinetuningType.PrefixTuning:
                parameterLengths.AddRange(PromptLearningFineTuning.ParameterLengths(setup.Finetuning, config));
                break;
            default:
                var lora = LoraSettings(setup, config);
                foreach (var t in used.Where(t => t.Module is not null && lora.Targets.Contains(t.Module)))
                    adapters.Add(((int)t.Info.Shape[1], (int)t.Info.Shape[0], lora.Rank, lora.Dropout));
                trained.UnionWith(ModulesToSave(used, lora.ModulesToSave));
                doraAdapters = lora.UseDora;
                mutatedInit = lora.MutatedInit;
                foreach (string merged in setup.AdapterDirectories.Take(lora.MergedAdapters))
                {
                    var earlier = LoraConfig.Load(merged);
                    materialized.UnionWith(used.Where(t => t.Module is not null && earlier.TargetModules.Contains(t.Module)).Select(t => t.Name));
                    materialized.UnionWith(ModulesToSave(used, earlier.ModulesToSave));
                }
                break;
        }
        materialized.UnionWith(trained);
        foreach (var t in used.Where(t => trained.Contains(t.Name))) parameterLengths.Add(checked((int)t.Elements));
        foreach (var a in adapters) parameterLengths.AddRange(doraAdapters ? [a.Rank * a.In, a.Out * a.Rank, a.Out] : [a.Rank * a.In, a.Out * a.Rank]);

        bool quantized = setup.Quantization is not null;
        var matrices = used.Where(t => t.IsMatrix).ToList();
        var quantizedMatrices = quantized ? matrices.Where(t => t.Module is not null).ToList() : [];
        long mapped = used.Where(t => !quantizedMatrices.Contains(t)).Sum(t => t.Bytes);
        long quantizedBytes = quantizedMatrices.Sum(t => Quantizer.StorageBytesFor((int)t.Info.Shape[0], (int)t.Info.Shape[1], setup.Quantization!));
        long vectorBytes = used.Where(t => !t.IsMatrix).Sum(t => sizeof(float) * t.Elements);
        long fp32Matrices = matrices.Where(t => materialized.Contains(t.Name)).Sum(t => sizeof(float) * t.Elements);
        long parameters = parameterLengths.Sum(l => (long)l);

        int chunk = DecoderModel.LossChunkRows(labelRows, config.VocabSize);
        bool lmHeadTrained = trained.Contains(config.TieWordEmbeddings ? config.Description.EmbeddingTensor : config.Description.LmHeadTensor);
        bool layerWeightsTrained = adapters.Count > 0 || matrices.Any(t => t.Module is not null && trained.Contains(t.Name));
        var gemm = (ManagedGemmKernel)GemmKernels.Managed;
        // The widest side of a layer's products: a fused Linear (ChatGLM's dense_h_to_4h) is one product over all its parts.
        int widest = config.Description.Linears.Select(l => DecoderArchitecture.Shape(config, l)).Max(s => Math.Max(s.Out, s.In));
        long packed = new[]
        {
            gemm.PackedAValues(chunk, config.VocabSize),                             // dx through lm_head
            gemm.PackedAValues(rows, widest),                                        // the layers' products
            layerWeightsTrained ? gemm.PackedAValues(widest, rows) : 0,              // weight (and LoRA B) gradients
            lmHeadTrained ? gemm.PackedAValues(config.VocabSize, chunk) : 0,         // lm_head's weight gradient
        }.Max() * sizeof(float);

        long activations = DecoderModel.ActivationBytes(config, rows, setup.GradientCheckpointing);
        long otherActivations = DecoderModel.ActivationBytes(config, rows, !setup.GradientCheckpointing);
        string optimNote = OptimizerNames.IsPaged(setup.Optim)
            ? $"{setup.Optim}: pageable (a file-backed mapping the kernel may write out under pressure)"
            : setup.Optim;
        long saving = method is FinetuningType.Lora or FinetuningType.Ia3 or FinetuningType.BitFit or FinetuningType.Adapter
            ? 2 * sizeof(float) * parameters
            : used.Sum(t => materialized.Contains(t.Name) || !t.IsMatrix ? EncodedBytes(t.Elements, storedDType) : t.Bytes) + sizeof(float) * parameters;

        var components = new List<MemoryComponent>
        {
            new("runtime, tokenizer, data", RuntimeBytes, ".NET runtime and the parsed tokenizer"),
            new($"weights, memory-mapped ({storedDType})", mapped, quantized ? "embedding, lm_head (projections quantised)" : "resident once touched"),
        };
        if (quantized) components.Add(new($"weights, quantised ({setup.Quantization})", quantizedBytes, "the layers' projections"));
        components.Add(new("norms and biases (fp32)", vectorBytes));
        if (fp32Matrices > 0) components.Add(new("trained weights (fp32 copies)", fp32Matrices, method == FinetuningType.Lora && trained.Count == 0 ? "merged adapters" : "materialised from the checkpoint"));
        components.Add(new("trainable parameters", method switch
            {
                FinetuningType.Lora => sizeof(float) * adapters.Sum(a => (long)a.Rank * (a.In + a.Out) + (doraAdapters ? a.Out : 0)),
                FinetuningType.Ia3 or FinetuningType.Adapter or FinetuningType.PromptTuning or FinetuningType.PTuning or FinetuningType.PrefixTuning => sizeof(float) * parameters,
                _ => 0,
            },
            $"{parameters:N0} values" + method switch
            {
                FinetuningType.Lora => $" ({(doraAdapters ? "DoRA" : "LoRA")} r{adapters.FirstOrDefault().Rank} on {adapters.Count} projections)",
                FinetuningType.Ia3 => " (IA3 vectors)",
                FinetuningType.Adapter => " (bottleneck adapters)",
                FinetuningType.PromptTuning or FinetuningType.PTuning or FinetuningType.PrefixTuning => $" ({setup.Finetuning.MethodName}, {virtualTokens} virtual tokens)",
                _ => ", the fp32 copies above",
            }));
        components.Add(new("gradients (fp32)", sizeof(float) * parameters));
        components.Add(new("optimizer state", OptimizerNames.StateBytes(setup.Optim, parameterLengths), optimNote));
        components.Add(new($"activations, {setup.BufferBatch} × {setup.CutoffLen} tokens", activations,
            $"gradient checkpointing {(setup.GradientCheckpointing ? "on" : "off")} ({(setup.GradientCheckpointing ? "off" : "on")}: {FormatBytes(otherActivations)})"));
        if (ia3CacheBytes > 0) components.Add(new("IA3 caches", ia3CacheBytes, "each layer's scaled side for a batch"));
        if (adapterCacheBytes > 0) components.Add(new("bottleneck adapter caches", adapterCacheBytes, "each adapter's input and bottleneck for a batch"));
        components.Add(new($"loss chunk, {chunk} rows × {config.VocabSize} logits", DecoderModel.LossChunkBytes(config, chunk)));
        components.Add(new("GEMM packing buffer", packed, "the largest product's packed operand"));
        if (adapters.Count > 0)
            components.Add(new("LoRA adapter caches", adapters.Sum(a => LoraLayer.CacheBytes(rows, a.Rank, a.In, a.Out, a.Dropout)
                    + (doraAdapters ? DoraLayer.CacheBytes(rows, a.Rank, a.In, a.Out) : 0)
                    + (mutatedInit ? MutatedInitLayer.CacheBytes(rows, a.Rank, a.In, a.Out) : 0)),
                string.Join(", ", new[] { adapters[0].Dropout > 0 ? "with dropout masks" : "", doraAdapters ? "DoRA's output-sized buffers" : "", mutatedInit ? "the initial adapter's term" : "" }.Where(s => s.Length > 0))));
        components.Add(new("checkpoint writing", saving, "copies while a checkpoint is written"));
        if (ReferenceBytes(config, mapped + vectorBytes, rows, setup) is { } reference) components.Add(reference);
        return new MemoryEstimate(components);
    }

    /// <summary>
    /// A preference stage's reference model beyond the policy: its weights (the starting weights mapped again, or
    /// ref_model's as stored: an upper bound when it is quantised on load) and the buffers of its evaluation forward
    /// (gradient checkpointing's, since it keeps no activations for a backward).
    /// </summary>
    private static MemoryComponent? ReferenceBytes(ModelConfig config, long startingWeights, int rows, TrainingMemorySetup setup)
    {
        switch (setup.Reference)
        {
            case PreferenceReference.StartingWeightsCopy:
                return new("reference model", startingWeights + DecoderModel.ActivationBytes(config, rows, true),
                    "a frozen copy of the starting weights (full and freeze tuning)");
            case PreferenceReference.OwnModel:
                string folder = setup.ReferenceModelDirectory!;
                ModelFolder.Validate(folder);
                var referenceConfig = ModelConfig.Load(ModelFolder.ConfigPath(folder));
                long weights;
                using (var checkpoint = SafetensorsCheckpoint.OpenDirectory(folder))
                    weights = checkpoint.Names.Select(checkpoint.Get).Sum(t => t.End - t.Begin);
                return new("reference model", weights + DecoderModel.ActivationBytes(referenceConfig, rows, true), $"ref_model {folder}, for evaluation only");
            default:
                return null;
        }
    }

    /// <summary>Bytes <see cref="SafetensorsWriter.EncodeFloat32"/> allocates for fp32 values saved as dtype (bf16/fp16: a ushort[] and its bytes).</summary>
    private static long EncodedBytes(long elements, DType dtype) => dtype == DType.F32 ? sizeof(float) * elements : 2 * DTypeInfo.SizeOf(dtype) * elements;

    private sealed record UsedTensor(TensorInfo Info, string? Module)
    {
        public string Name => Info.Name;
        public DType DType => Info.DType;
        public long Elements => Info.ElementCount;
        public long Bytes => Info.End - Info.Begin;
        public bool IsMatrix => Info.Shape.Length == 2;
    }

    /// <summary>
    /// The tensors the decoder binds (a tied lm_head is the embedding); Module names a layer projection (q_proj...).
    /// Only their rank is checked here: loading checks every name and shape against config.json.
    /// </summary>
    private static List<UsedTensor> UsedTensors(ModelConfig config, IReadOnlyList<TensorInfo> tensors, string source)
    {
        var arch = config.Description;
        var used = new List<UsedTensor>();
        foreach (var t in tensors)
        {
            if (t.Name == arch.LmHeadTensor && config.TieWordEmbeddings) continue;
            var projection = arch.LinearOfWeight(t.Name);
            bool matrix = projection is not null || t.Name == arch.EmbeddingTensor || t.Name == arch.LmHeadTensor;
            // The vectors the decoder binds are the layers' norms and biases and the final norm (not, say, ChatGLM's unused inv_freq).
            if (!matrix && !t.Name.StartsWith(arch.LayerPrefix, StringComparison.Ordinal) && t.Name != arch.FinalNormTensor) continue;
            if (t.Shape.Length != (matrix ? 2 : 1))
                throw new InvalidDataException($"{source}: tensor '{t.Name}' has shape [{string.Join(", ", t.Shape)}]; a {(matrix ? "matrix" : "norm or bias vector")} was expected");
            used.Add(new UsedTensor(t, projection?.Name));
        }
        if (!used.Any(t => t.Name == arch.EmbeddingTensor))
            throw new InvalidDataException($"{source}: the checkpoint has no {arch.EmbeddingTensor}");
        return used;
    }

    /// <summary>
    /// The LoRA a run trains: new from the config's keys, or the last adapter folder's (its own config decides), as
    /// <see cref="TrainableModels.Create"/> decides; and how many adapter folders it merges first.
    /// </summary>
    private static (HashSet<string> Targets, int Rank, float Dropout, IReadOnlyList<string> ModulesToSave, bool UseDora, bool MutatedInit, int MergedAdapters)
        LoraSettings(TrainingMemorySetup setup, ModelConfig config)
    {
        var args = setup.Finetuning;
        int count = setup.AdapterDirectories.Count;
        if (count > 0 && !(args.CreateNewAdapter && setup.Quantization is null))
        {
            var saved = LoraConfig.Load(setup.AdapterDirectories[^1]);
            return (saved.TargetModules.Select(m => m[(m.LastIndexOf('.') + 1)..]).ToHashSet(StringComparer.Ordinal), saved.Rank, (float)saved.Dropout, saved.ModulesToSave,
                saved.UseDora, saved.InitLoraWeights is not null, count - 1);
        }
        var targets = args.LoraTarget.Count == 1 && args.LoraTarget[0] == "all" ? config.Description.LinearNames : args.LoraTarget;
        return (targets.ToHashSet(StringComparer.Ordinal), args.LoraRank, (float)args.LoraDropout, args.AdditionalTarget,
            args.UseDora, args.EffectiveInitLoraWeights is not null, count);
    }

    /// <summary>PEFT's modules_to_save rule, as <see cref="LoraFineTuning"/> applies it: tensors whose module path ends with a name.</summary>
    private static IEnumerable<string> ModulesToSave(List<UsedTensor> used, IReadOnlyList<string> names) =>
        used.Where(t => names.Any(n => t.Name[..t.Name.LastIndexOf('.')].EndsWith(n, StringComparison.Ordinal))).Select(t => t.Name);

    /// <summary>Bytes as MB below 1 GB, else GB (decimal units, as `free -h` and cloud instance sizes use).</summary>
    public static string FormatBytes(long bytes) => bytes >= 1_000_000_000
        ? (bytes / 1e9).ToString("F2", System.Globalization.CultureInfo.InvariantCulture) + " GB"
        : (bytes / 1e6).ToString("F1", System.Globalization.CultureInfo.InvariantCulture) + " MB";
}
