using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Peft.Lora;

/// <summary>
/// LoRA fine-tuning: the decoder's weights are frozen, LoRA adapters wrap the targeted Linears of every layer, and
/// additional_target modules (PEFT's modules_to_save) are trained in full. Saves a PEFT adapter folder.
/// </summary>
public sealed class LoraFineTuning : ITrainableModel
{
    public DecoderModel Decoder { get; }
    /// <summary>The LoRA layers (with DoRA, the LoRA part of each <see cref="DoraLayer"/>).</summary>
    public IReadOnlyList<LoraLayer> Adapters { get; }
    /// <summary>The tuner on each wrapped Linear: the LoRA layer, or with DoRA the <see cref="DoraLayer"/> around it.</summary>
    public IReadOnlyList<ILinearTuner> Tuners { get; }
    /// <summary>Decoder tensors trained in full and saved next to the adapter.</summary>
    public IReadOnlyList<ModelTensor> ModulesToSaveTensors { get; }
    public int Rank { get; }
    public double Alpha { get; }
    public double Dropout { get; }
    public bool UseRslora { get; }
    public bool UseDora { get; }
    /// <summary>init_lora_weights when the adapters were taken from the base weight (PiSSA, OLoRA), else null.</summary>
    public string? InitLoraWeights { get; }
    public IReadOnlyList<string> ModulesToSave { get; }
    public IReadOnlyList<Parameter> TrainableParameters { get; }
    public long TotalParameterCount { get; }

    private LoraFineTuning(DecoderModel decoder, IReadOnlyList<ILinearTuner> tuners, IReadOnlyList<string> modulesToSave,
        int rank, double alpha, double dropout, bool useRslora, bool useDora, string? initLoraWeights)
    {
        Decoder = decoder;
        Tuners = tuners;
        Adapters = tuners.Select(t => t switch
        {
            DoraLayer dora => dora.Lora,
            MutatedInitLayer mutated => mutated.Lora,
            _ => (LoraLayer)t,
        }).ToArray();
        InitLoraWeights = initLoraWeights;
        Rank = rank;
        Alpha = alpha;
        Dropout = dropout;
        UseRslora = useRslora;
        UseDora = useDora;
        ModulesToSave = modulesToSave;
        // PEFT counts the frozen originals of modules_to_save next to their trainable copies (a tied pair once).
        long baseCount = decoder.Tensors.Sum(t => t.Length);
        UntieForModulesToSave(decoder, modulesToSave);
        ModulesToSaveTensors = MatchModulesToSave(decoder, modulesToSave);
        var parameters = new List<Parameter>();
        foreach (var tuner in tuners) parameters.AddRange(tuner.Parameters);
        foreach (var t in ModulesToSaveTensors) parameters.Add(t.MakeTrainable(LoraAdapterFile.KeyPrefix + t.Name));
        TrainableParameters = parameters;
        TotalParameterCount = baseCount + parameters.Sum(p => (long)p.Length);
    }

    /// <summary>
    /// New adapters as LLaMA-Factory creates them from lora_rank, lora_alpha, lora_dropout, lora_target, use_rslora,
    /// use_dora (the magnitude starting at ‖W‖ per row, as PEFT's), additional_target, and PEFT's init_lora_weights
    /// (pissa_init/pissa_iter, olora: the adapter taken from the base weight, see <see cref="MutatedInitLayer"/>).
    /// </summary>
    public static LoraFineTuning CreateNew(DecoderModel decoder, FinetuningArguments args, SeededRandom initRandom)
    {
        if (args.LoraRank <= 0) throw new ArgumentException($"lora_rank must be positive, got {args.LoraRank}");
        // lora_target "all": every Linear the architecture declares inside the layers (lm_head excluded).
        var allLinears = decoder.Config.Description.LinearNames;
        var targets = args.LoraTarget.Count == 1 && args.LoraTarget[0] == "all" ? allLinears : args.LoraTarget;
        foreach (string target in targets)
            if (!decoder.Linears.Any(l => l.ModuleName == target))
                throw new ArgumentException($"lora_target: module '{target}' is not a Linear of the decoder layers (choose from {string.Join(", ", allLinears)}, or all)");
        double alpha = args.EffectiveLoraAlpha;
        float scaling = (float)(args.UseRslora ? alpha / Math.Sqrt(args.LoraRank) : alpha / args.LoraRank);
        string? init = args.EffectiveInitLoraWeights;
        if (init is not null && args.UseDora)
            throw new ArgumentException($"use_dora with init_lora_weights {init} (pissa_init) is not supported: the DoRA norm would be taken over the residual base");
        if (args.PissaConvert && args.AdditionalTarget.Count > 0)
            throw new ArgumentException("pissa_convert with additional_target is not supported: PEFT's conversion keeps only lora_A and lora_B, so the converted adapter would lose the modules trained in full");
        var tuners = new List<ILinearTuner>();
        foreach (var linear in decoder.Linears)
        {
            if (!targets.Contains(linear.ModuleName)) continue;
            ILinearTuner tuner;
            if (init is null)
            {
                var lora = LoraLayer.CreateNew(linear.ModulePath, linear.InFeatures, linear.OutFeatures, args.LoraRank, scaling, (float)args.LoraDropout, initRandom,
                    decoder.Backend);
                tuner = args.UseDora ? new DoraLayer(lora, new float[linear.OutFeatures], decoder.Backend) : lora;
            }
            else
            {
                var weight = new float[linear.OutFeatures * linear.InFeatures];
                linear.Base.ReadWeightRows(0, linear.OutFeatures, weight);
                var initial = LoraInitialization.Initial(init, weight, linear.OutFeatures, linear.InFeatures, args.LoraRank, scaling, linear.ModulePath, decoder.Backend);
                var lora = new LoraLayer(linear.ModulePath, args.LoraRank, linear.InFeatures, linear.OutFeatures, scaling, (float)args.LoraDropout,
                    (float[])initial.A.Clone(), (float[])initial.B.Clone(), decoder.Backend);
                tuner = new MutatedInitLayer(lora, init, decoder.Backend, initial);
            }
            linear.AddTuner(tuner);
            if (tuner is DoraLayer dora) dora.InitializeMagnitude();
            tuners.Add(tuner);
        }
        return new LoraFineTuning(decoder, tuners, args.AdditionalTarget, args.LoraRank, alpha, args.LoraDropout, args.UseRslora, args.UseDora, init);
    }

    /// <summary>Continues training a saved PEFT adapter (its own config decides rank, alpha, dropout and targets).</summary>
    public static LoraFineTuning Resume(DecoderModel decoder, string adapterDirectory)
    {
        var config = LoraConfig.Load(adapterDirectory);
        var adapters = Attach(decoder, adapterDirectory, config, out var extra);
        var model = new LoraFineTuning(decoder, adapters, config.ModulesToSave, config.Rank, config.Alpha, config.Dropout, config.UseRslora, config.UseDora,
            config.InitLoraWeights);
        foreach (var t in model.ModulesToSaveTensors)
        {
            if (!extra.TryGetValue(t.Name, out var saved))
                throw new InvalidDataException($"{adapterDirectory}: modules_to_save tensor '{t.Name}' is missing from {LoraAdapterFile.FileName}");
            if (saved.Data.Length != t.Data.Length)
                throw new InvalidDataException($"{adapterDirectory}: '{t.Name}' holds {saved.Data.Length} values, the model's has {t.Data.Length}");
            saved.Data.CopyTo(t.Data, 0);
        }
        return model;
    }

    /// <summary>
    /// Folds a saved adapter into the decoder's weights (W + s·B·A, with DoRA rescaled per row; modules_to_save copied), as merge_and_unload does.
    /// Only the modules it changes become fp32 copies; the rest stay as stored.
    /// </summary>
    public static void MergeInto(DecoderModel decoder, string adapterDirectory)
    {
        var config = LoraConfig.Load(adapterDirectory);
        var adapters = Attach(decoder, adapterDirectory, config, out var extra);
        foreach (var adapter in adapters)
        {
            var linear = decoder.Linears.First(l => l.ModulePath == adapter.ModulePath);
            adapter.MergeInto(linear.Weight.Materialize(), linear.Bias?.Materialize());
            linear.Tuners.Remove(adapter);
        }
        UntieForModulesToSave(decoder, extra.Keys.Select(ModulePathOf).ToList());
        foreach (var t in decoder.Tensors)
            if (extra.TryGetValue(t.Name, out var saved) && saved.Data.Length == t.Length)
                saved.Data.CopyTo(t.Materialize(), 0);
    }

    /// <summary>
    /// PEFT's ModulesToSaveWrapper on a tied model wraps embed_tokens or lm_head alone: the wrapped module trains (or
    /// loads) a copy while the other keeps the shared original weight, so the two are untied here first. (PEFT's
    /// ensure_weight_tying, which would keep them tied, is not an option LLaMA-Factory passes.)
    /// </summary>
    private static void UntieForModulesToSave(DecoderModel decoder, IReadOnlyList<string> modules)
    {
        if (ReferenceEquals(decoder.LmHead, decoder.Embedding)
            && modules.Any(m => ModulePathOf(decoder.Embedding.Name).EndsWith(m, StringComparison.Ordinal) || "lm_head".EndsWith(m, StringComparison.Ordinal)))
            decoder.UntieLmHead();
    }

    private static List<ILinearTuner> Attach(DecoderModel decoder, string adapterDirectory, LoraConfig config,
        out Dictionary<string, (long[] Shape, float[] Data)> extra)
    {
        var (pairs, others) = LoraAdapterFile.Load(adapterDirectory, config.Rank, config.UseDora);
        extra = others;
        var linears = decoder.Linears.ToDictionary(l => l.ModulePath, StringComparer.Ordinal);
        var adapters = new List<ILinearTuner>();
        foreach (var linear in decoder.Linears)
        {
            if (!pairs.TryGetValue(linear.ModulePath, out var pair)) continue;
            if (pair.InFeatures != linear.InFeatures || pair.OutFeatures != linear.OutFeatures)
                throw new InvalidDataException($"{adapterDirectory}: {linear.ModulePath} adapter is {pair.OutFeatures}×{pair.InFeatures}, the model's Linear is {linear.OutFeatures}×{linear.InFeatures}");
            var adapter = LoraLayer.ForPair(pair, config, decoder.Backend);
            linear.AddTuner(adapter);
            adapters.Add(adapter);
        }
        foreach (string module in pairs.Keys)
            if (!linears.ContainsKey(module))
                throw new InvalidDataException($"{adapterDirectory}: adapter module '{module}' is not a Linear of this model");
        return adapters;
    }

    /// <summary>PEFT's rule: a module is saved in full when its path ends with one of the names.</summary>
    private static List<ModelTensor> MatchModulesToSave(DecoderModel decoder, IReadOnlyList<string> names)
    {
        var tensors = new List<ModelTensor>();
        foreach (string name in names)
        {
            var matched = decoder.Tensors.Where(t => ModulePathOf(t.Name).EndsWith(name, StringComparison.Ordinal)).ToList();
            if (matched.Count == 0) throw new ArgumentException($"additional_target: module '{name}' is not found in the model");
            foreach (var t in matched)
                if (!tensors.Contains(t)) tensors.Add(t);
        }
        return tensors;
    }

    private static string ModulePathOf(string parameterName) => parameterName[..parameterName.LastIndexOf('.')];

    public LossResult ForwardBackward(TrainingBatch batch, float gradScale, SeededRandom random) => Decoder.ForwardBackward(batch, gradScale, random);

    public LossResult Evaluate(TrainingBatch batch) => Decoder.Evaluate(batch);

    /// <summary>adapter_config.json + adapter_model.safetensors (float32, PEFT keys), base_model_name_or_path = the base's Hub id or folder.</summary>
    public void Save(string directory)
    {
        var config = new LoraConfig
        {
            Rank = Rank,
            Alpha = Alpha,
            Dropout = Dropout,
            UseRslora = UseRslora,
            UseDora = UseDora,
            InitLoraWeights = InitLoraWeights,
            TargetModules = TargetModules,
            ModulesToSave = ModulesToSave,
            BaseModelNameOrPath = Decoder.BaseModelName,
        };
        LoraAdapterFile.Save(directory,
            Tuners.Zip(Adapters, (t, a) => new LoraPair(a.ModulePath, a.A.Data, a.B.Data, a.Rank, a.InFeatures, a.OutFeatures, (t as DoraLayer)?.Magnitude.Data)),
            ModulesToSaveTensors.Select(t => (t.Name, t.Shape.Select(d => (long)d).ToArray(), t.Data)));
        config.Save(directory);
    }

    /// <summary>The module names (a Linear path's last part) that carry adapters, as target_modules lists them.</summary>
    private string[] TargetModules => Adapters.Select(a => a.ModulePath[(a.ModulePath.LastIndexOf('.') + 1)..]).Distinct().Order(StringComparer.Ordinal).ToArray();

    /// <summary>
    /// PEFT's save_pretrained with path_initial_model_for_weight_conversion, which LLaMA-Factory's pissa_convert runs at
    /// the end of training: the trained PiSSA/OLoRA adapter as a plain LoRA on the original base, rank 2r with
    /// A' = [A; A₀] and B' = [B, −B₀], lora_alpha doubled (× √2 with rsLoRA) so the scaling stays, init_lora_weights true.
    /// </summary>
    /// <exception cref="InvalidOperationException">The adapters were not taken from the base weight, or modules are trained in full.</exception>
    public void SaveConverted(string directory)
    {
        if (InitLoraWeights is null) throw new InvalidOperationException("only an adapter initialised from the base weight (pissa_init, init_lora_weights olora) is converted");
        if (ModulesToSave.Count > 0) throw new InvalidOperationException("PEFT's conversion keeps only lora_A and lora_B, so an adapter with modules_to_save is not converted");
        var config = new LoraConfig
        {
            Rank = 2 * Rank,
            Alpha = UseRslora ? Alpha * Math.Sqrt(2) : 2 * Alpha,
            Dropout = Dropout,
            UseRslora = UseRslora,
            TargetModules = TargetModules,
            BaseModelNameOrPath = Decoder.BaseModelName,
        };
        LoraAdapterFile.Save(directory, Tuners.Select(t => ((MutatedInitLayer)t).Converted()));
        config.Save(directory);
    }

    public void Dispose() => Decoder.Dispose();
}
