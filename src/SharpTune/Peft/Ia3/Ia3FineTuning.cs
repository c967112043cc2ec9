using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Peft.Ia3;

/// <summary>
/// IA3 fine-tuning: the decoder's weights are frozen and an <see cref="Ia3Layer"/> wraps every targeted Linear of
/// every layer, as PEFT's get_peft_model with an IA3Config does. Saves a PEFT IA3 adapter folder.
/// </summary>
public sealed class Ia3FineTuning : ITrainableModel
{
    public DecoderModel Decoder { get; }
    public IReadOnlyList<Ia3Layer> Layers { get; }
    public IReadOnlyList<Parameter> TrainableParameters { get; }
    public long TotalParameterCount { get; }

    private Ia3FineTuning(DecoderModel decoder, IReadOnlyList<Ia3Layer> layers)
    {
        Decoder = decoder;
        Layers = layers;
        TrainableParameters = layers.Select(l => l.L).ToArray();
        TotalParameterCount = decoder.Tensors.Sum(t => (long)t.Length) + TrainableParameters.Sum(p => (long)p.Length);
    }

    /// <summary>New layers (every ia3_l 1) on the Linears ia3_target names, those ia3_feedforward names scaling their input.</summary>
    public static Ia3FineTuning CreateNew(DecoderModel decoder, FinetuningArguments args)
    {
        var allLinears = decoder.Config.Description.LinearNames;
        var targets = args.Ia3Target.Count == 1 && args.Ia3Target[0] == "all" ? allLinears : args.Ia3Target;
        foreach (string target in targets)
            if (!decoder.Linears.Any(l => l.ModuleName == target))
                throw new ArgumentException($"ia3_target: module '{target}' is not a Linear of the decoder layers (choose from {string.Join(", ", allLinears)}, or all)");
        foreach (string feedforward in args.Ia3Feedforward)
            if (!targets.Contains(feedforward))
                throw new ArgumentException($"ia3_feedforward: module '{feedforward}' is not among ia3_target ({string.Join(", ", targets)}); PEFT requires feedforward_modules to be a subset of target_modules");
        var layers = new List<Ia3Layer>();
        foreach (var linear in decoder.Linears)
        {
            if (!targets.Contains(linear.ModuleName)) continue;
            var layer = Ia3Layer.CreateNew(linear.ModulePath, linear.InFeatures, linear.OutFeatures, args.Ia3Feedforward.Contains(linear.ModuleName), decoder.Backend);
            linear.Tuners.Add(layer);
            layers.Add(layer);
        }
        return new Ia3FineTuning(decoder, layers);
    }

    /// <summary>Continues training a saved IA3 adapter (its own config decides the targets and which are feed-forward).</summary>
    public static Ia3FineTuning Resume(DecoderModel decoder, string adapterDirectory)
    {
        var adapter = Ia3Adapter.Load(adapterDirectory);
        var linears = decoder.Linears.ToDictionary(l => l.ModulePath, StringComparer.Ordinal);
        adapter.ValidateAgainst(module => linears.TryGetValue(module, out var l) ? [l.OutFeatures, l.InFeatures] : null, _ => null, decoder.Directory);
        var layers = adapter.CreateTuners(decoder.Backend).Cast<Ia3Layer>().ToList();
        foreach (var layer in layers) linears[layer.ModulePath].Tuners.Add(layer);
        // The decoder's order, so checkpoints list the parameters as a new run does.
        var order = decoder.Linears.Select((l, i) => (l.ModulePath, i)).ToDictionary(p => p.ModulePath, p => p.i, StringComparer.Ordinal);
        return new Ia3FineTuning(decoder, layers.OrderBy(l => order[l.ModulePath]).ToList());
    }

    public LossResult ForwardBackward(TrainingBatch batch, float gradScale, SeededRandom random) => Decoder.ForwardBackward(batch, gradScale, random);

    public LossResult Evaluate(TrainingBatch batch) => Decoder.Evaluate(batch);

    /// <summary>adapter_config.json (PEFT's IA3Config) + adapter_model.safetensors (float32 ia3_l vectors, PEFT keys).</summary>
    public void Save(string directory)
    {
        static string Name(Ia3Layer l) => l.ModulePath[(l.ModulePath.LastIndexOf('.') + 1)..];
        Ia3AdapterFile.Save(directory, Layers);
        new Ia3Config
        {
            TargetModules = Layers.Select(Name).Distinct().Order(StringComparer.Ordinal).ToArray(),
            FeedforwardModules = Layers.Where(l => l.IsFeedforward).Select(Name).Distinct().Order(StringComparer.Ordinal).ToArray(),
            BaseModelNameOrPath = Decoder.BaseModelName,
        }.Save(directory);
    }

    public void Dispose() => Decoder.Dispose();
}
