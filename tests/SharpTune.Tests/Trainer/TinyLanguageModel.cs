using SharpTune.Data;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Training;

namespace SharpTune.Tests.Trainer;

/// <summary>
/// A deterministic bigram language model for trainer tests: embedding [V × D] with inverted dropout drawn from the
/// trainer's generator, then a linear layer [D × V] plus bias to the logits; loss = mean shifted cross-entropy over
/// label tokens. Small enough to train in milliseconds, and its dropout makes the generator state matter.
/// </summary>
internal sealed class TinyLanguageModel : ITrainableModel
{
    public const int Vocab = 11;
    public const int DefaultDim = 6;
    private readonly int _dim;
    private readonly float _dropout;
    private readonly Parameter _embed, _proj, _bias;

    /// <summary>
    /// <paramref name="dim"/> sets the embedding width; with 400 the two matrices (4400 values) are large enough for
    /// 8-bit optimizer state. The initial scale shrinks as 1/√dim so that wider models start with similar logits.
    /// </summary>
    public TinyLanguageModel(ulong seed, float dropout = 0.1f, string projectionName = "proj.weight", int dim = DefaultDim)
    {
        _dim = dim;
        _dropout = dropout;
        var rng = new SeededRandom(seed);
        double scale = 0.5 * Math.Sqrt((double)DefaultDim / dim);
        float[] Init(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextGaussian() * scale)).ToArray();
        _embed = new Parameter("embed.weight", [Vocab, dim], Init(Vocab * dim));
        _proj = new Parameter(projectionName, [dim, Vocab], Init(dim * Vocab));
        _bias = new Parameter("proj.bias", [Vocab], new float[Vocab]) { WeightDecay = false };
        TrainableParameters = [_embed, _proj, _bias];
    }

    public IReadOnlyList<Parameter> TrainableParameters { get; }
    public long TotalParameterCount => TrainableParameters.Sum(p => (long)p.Length);

    /// <summary>Called with the number of ForwardBackward calls so far, after each one (tests cancel from here).</summary>
    public Action<int>? AfterForward { get; set; }
    /// <summary>Called with the target folder before Save writes anything (tests inject failures here).</summary>
    public Action<string>? BeforeSave { get; set; }
    public int ForwardCalls { get; private set; }
    /// <summary>The mean loss of every ForwardBackward call, in order.</summary>
    public List<double> TrainingLosses { get; } = [];

    public LossResult ForwardBackward(TrainingBatch batch, float gradScale, SeededRandom random)
    {
        var result = Run(batch, gradScale, random);
        TrainingLosses.Add(result.Mean);
        ForwardCalls++;
        AfterForward?.Invoke(ForwardCalls);
        return result;
    }

    public LossResult Evaluate(TrainingBatch batch) => Run(batch, null, null);

    public void Save(string directory)
    {
        BeforeSave?.Invoke(directory);
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"),
            TrainableParameters.Select(p => (p.Name, p.Shape.Select(d => (long)d).ToArray(), p.Data)));
    }

    public void Dispose() { }

    private LossResult Run(TrainingBatch batch, float? gradScale, SeededRandom? random)
    {
        int count = 0;
        for (int b = 0; b < batch.Batch; b++)
            for (int t = 0; t + 1 < batch.Length; t++)
                if (batch.Labels[b * batch.Length + t + 1] != -100) count++;
        double sum = 0;
        int dim = _dim;
        var h = new float[dim];
        var mask = new float[dim];
        var logits = new double[Vocab];
        for (int b = 0; b < batch.Batch; b++)
            for (int t = 0; t + 1 < batch.Length; t++)
            {
                int target = batch.Labels[b * batch.Length + t + 1];
                if (target == -100) continue;
                int x = batch.InputIds[b * batch.Length + t];
                for (int d = 0; d < dim; d++)
                {
                    mask[d] = random is null ? 1f : random.NextFloat() < _dropout ? 0f : 1f / (1f - _dropout);
                    h[d] = _embed.Data[x * dim + d] * mask[d];
                }
                double max = double.NegativeInfinity;
                for (int v = 0; v < Vocab; v++)
                {
                    float z = _bias.Data[v];
                    for (int d = 0; d < dim; d++) z += h[d] * _proj.Data[d * Vocab + v];
                    logits[v] = z;
                    max = Math.Max(max, z);
                }
                double norm = 0;
                for (int v = 0; v < Vocab; v++) norm += Math.Exp(logits[v] - max);
                double lse = max + Math.Log(norm);
                sum += lse - logits[target];
                if (gradScale is not { } scale) continue;

                for (int v = 0; v < Vocab; v++)
                {
                    float dl = (float)((Math.Exp(logits[v] - lse) - (v == target ? 1 : 0)) * scale / count);
                    _bias.Grad[v] += dl;
                    for (int d = 0; d < dim; d++)
                    {
                        _proj.Grad[d * Vocab + v] += h[d] * dl;
                        _embed.Grad[x * dim + d] += mask[d] * _proj.Data[d * Vocab + v] * dl;
                    }
                }
            }
        return new LossResult(sum, count);
    }

    /// <summary>Sequences following next = (3·prev + 1) mod (V−1) + 1 with a random start; the first token is prompt.</summary>
    public static List<SupervisedExample> Examples(int count, ulong seed)
    {
        var rng = new SeededRandom(seed);
        var examples = new List<SupervisedExample>();
        for (int i = 0; i < count; i++)
        {
            int length = 3 + rng.NextInt(5);
            var ids = new int[length];
            ids[0] = 1 + rng.NextInt(Vocab - 1);
            for (int t = 1; t < length; t++) ids[t] = (3 * ids[t - 1] + 1) % (Vocab - 1) + 1;
            var labels = ids.Select((id, t) => t == 0 ? -100 : id).ToArray();
            examples.Add(new SupervisedExample(ids, Enumerable.Repeat(1, length).ToArray(), labels));
        }
        return examples;
    }
}
