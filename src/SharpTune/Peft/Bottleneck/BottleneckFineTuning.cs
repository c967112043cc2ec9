using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Peft.Bottleneck;

/// <summary>
/// Bottleneck (Houlsby) adapter fine-tuning: the decoder is frozen and every layer gets an adapter after the
/// attention (on o_proj's output) and after the MLP (on down_proj's output), as the adapters library's double_seq_bn
/// preset places them. Saves the library's folder (<see cref="BottleneckConfig"/>, <see cref="BottleneckAdapterFile"/>).
/// </summary>
public sealed class BottleneckFineTuning : ITrainableModel
{
    public DecoderModel Decoder { get; }
    public BottleneckConfig Config { get; }
    public IReadOnlyList<BottleneckLayer> Layers { get; }
    public IReadOnlyList<Parameter> TrainableParameters { get; }
    public long TotalParameterCount { get; }

    private BottleneckFineTuning(DecoderModel decoder, BottleneckConfig config, IReadOnlyList<BottleneckLayer> layers)
    {
        Decoder = decoder;
        Config = config;
        Layers = layers;
        TrainableParameters = layers.SelectMany(l => l.Parameters).ToArray();
        TotalParameterCount = decoder.Tensors.Sum(t => (long)t.Length) + TrainableParameters.Sum(p => (long)p.Length);
    }

    /// <summary>The adapter block's key prefix for the Linear it hooks (model.layers.{i}.attention_adapters.adapters.NAME).</summary>
    private static string KeyPrefix(TrainableLinear linear, string name)
    {
        string path = linear.ModulePath;
        string layer = path[..path.LastIndexOf('.', path.LastIndexOf('.') - 1)];
        return BottleneckAdapterFile.KeyPrefix(layer, linear.ModuleName == "o_proj" ? BottleneckAdapterFile.AttentionBlock : BottleneckAdapterFile.OutputBlock, name);
    }

    /// <summary>New adapters (adapter_reduction_factor, adapter_non_linearity), initialised as the library's init_weights "bert".</summary>
    public static BottleneckFineTuning CreateNew(DecoderModel decoder, FinetuningArguments args, SeededRandom initRandom)
    {
        var config = new BottleneckConfig
        {
            ReductionFactor = args.AdapterReductionFactor,
            NonLinearity = BottleneckConfig.ParseNonLinearity(args.AdapterNonLinearity),
            ModelType = decoder.Config.ModelType,
            HiddenSize = decoder.Config.HiddenSize,
            ModelName = decoder.BaseModelName,
        };
        int bottleneck = config.BottleneckSize(decoder.Config.HiddenSize);
        var layers = new List<BottleneckLayer>();
        foreach (var linear in decoder.Linears)
        {
            if (linear.ModuleName is not ("o_proj" or "down_proj")) continue;
            var layer = BottleneckLayer.CreateNew(linear.ModulePath, linear.InFeatures, linear.OutFeatures, KeyPrefix(linear, config.Name), bottleneck,
                config.NonLinearity, initRandom, decoder.Backend);
            linear.Tuners.Add(layer);
            layers.Add(layer);
        }
        if (layers.Count == 0)
            throw new ArgumentException($"finetuning_type adapter: the model {decoder.Directory} has no o_proj/down_proj Linears for the adapters to follow");
        return new BottleneckFineTuning(decoder, config, layers);
    }

    /// <summary>Continues training a saved bottleneck adapter folder (its own config decides the shape).</summary>
    public static BottleneckFineTuning Resume(DecoderModel decoder, string adapterDirectory)
    {
        var adapter = BottleneckAdapter.Load(adapterDirectory);
        var linears = decoder.Linears.ToDictionary(l => l.ModulePath, StringComparer.Ordinal);
        adapter.ValidateAgainst(module => linears.TryGetValue(module, out var l) ? [l.OutFeatures, l.InFeatures] : null, _ => null, decoder.Directory);
        var layers = adapter.CreateTuners(decoder.Backend).Cast<BottleneckLayer>().ToList();
        foreach (var layer in layers) linears[layer.ModulePath].Tuners.Add(layer);
        var order = decoder.Linears.Select((l, i) => (l.ModulePath, i)).ToDictionary(p => p.ModulePath, p => p.i, StringComparer.Ordinal);
        return new BottleneckFineTuning(decoder, adapter.Config, layers.OrderBy(l => order[l.ModulePath]).ToList());
    }

    public LossResult ForwardBackward(TrainingBatch batch, float gradScale, SeededRandom random) => Decoder.ForwardBackward(batch, gradScale, random);

    public LossResult Evaluate(TrainingBatch batch) => Decoder.Evaluate(batch);

    /// <summary>The adapters library's folder: adapter_config.json and adapter.safetensors (float32).</summary>
    public void Save(string directory)
    {
        BottleneckAdapterFile.Save(directory, Layers);
        // model_class is the transformers class the library saw: the base's config.json names it.
        var baseConfig = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(ModelFolder.ConfigPath(Decoder.Directory)));
        Config.Save(directory, baseConfig?["architectures"]?[0]?.GetValue<string>() ?? "");
    }

    public void Dispose() => Decoder.Dispose();
}
