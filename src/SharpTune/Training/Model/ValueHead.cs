using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;

namespace SharpTune.Training.Model;

/// <summary>
/// TRL's ValueHead as LLaMA-Factory trains it (AutoModelForCausalLMWithValueHead): Linear(hidden, 1) with bias on the
/// final normed hidden state, after a dropout of <see cref="TrainingDropout"/> while training. Saved beside the
/// adapter or weights as <see cref="FileName"/> with TRL's names, which LLaMA-Factory's reward-model loading reads;
/// it is not part of the language model, so export and the other commands leave it out.
/// </summary>
public sealed class ValueHead
{
    /// <summary>LLaMA-Factory's V_HEAD_SAFE_WEIGHTS_NAME.</summary>
    public const string FileName = "value_head.safetensors";
    public const string WeightName = "v_head.summary.weight";
    public const string BiasName = "v_head.summary.bias";
    /// <summary>TRL's summary_dropout_prob default, which LLaMA-Factory does not change.</summary>
    public const float TrainingDropout = 0.1f;

    public int HiddenSize { get; }
    /// <summary>[1 × hidden]</summary>
    public Parameter Weight { get; }
    /// <summary>[1]</summary>
    public Parameter Bias { get; }
    public IReadOnlyList<Parameter> Parameters => [Weight, Bias];

    private ValueHead(int hiddenSize, float[] weight, float[] bias)
    {
        HiddenSize = hiddenSize;
        Weight = new Parameter(WeightName, [1, hiddenSize], weight);
        // transformers' Trainer exempts biases from weight decay.
        Bias = new Parameter(BiasName, [1], bias) { WeightDecay = false };
    }

    /// <summary>torch.nn.Linear's default initialisation: weight and bias uniform in ±1/√hidden.</summary>
    public static ValueHead CreateNew(int hiddenSize, SeededRandom random)
    {
        double bound = 1 / Math.Sqrt(hiddenSize);
        float Draw() => (float)((2 * random.NextDouble() - 1) * bound);
        var weight = new float[hiddenSize];
        for (int i = 0; i < hiddenSize; i++) weight[i] = Draw();
        return new ValueHead(hiddenSize, weight, [Draw()]);
    }

    /// <summary>Reads a value_head.safetensors file (or the folder holding one) for a model of <paramref name="hiddenSize"/>.</summary>
    /// <exception cref="InvalidDataException">A tensor missing or of the wrong shape, named with the file.</exception>
    public static ValueHead Load(string path, int hiddenSize)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"value head {path} does not exist", path);
        using var file = SafetensorsFile.Open(path);
        float[] Read(string name, long[] shape)
        {
            if (!file.Contains(name)) throw new InvalidDataException($"{path}: tensor '{name}' is missing (a value head holds {WeightName} and {BiasName})");
            long[] actual = file.Get(name).Shape;
            if (!actual.SequenceEqual(shape))
                throw new InvalidDataException($"{path}: tensor '{name}' has shape [{string.Join(", ", actual)}]; this model needs [{string.Join(", ", shape)}]");
            return file.ReadFloat32(name);
        }
        return new ValueHead(hiddenSize, Read(WeightName, [1, hiddenSize]), Read(BiasName, [1]));
    }

    /// <summary>Writes <see cref="FileName"/> into <paramref name="directory"/> (float32, {"format": "pt"}), atomically.</summary>
    public void Save(string directory) =>
        SafetensorsWriter.Write(Path.Combine(directory, FileName),
            Parameters.Select(p => (p.Name, p.Shape.Select(d => (long)d).ToArray(), p.Data)), metadata: SafetensorsWriter.PyTorchMetadata);

    /// <summary>
    /// A training dropout mask over one hidden row: each element kept with probability 1 − p and then scaled by
    /// 1/(1 − p), as torch.nn.Dropout.
    /// </summary>
    public float[] DropoutMask(SeededRandom random)
    {
        var mask = new float[HiddenSize];
        float scale = 1 / (1 - TrainingDropout);
        for (int i = 0; i < mask.Length; i++) mask[i] = random.NextFloat() < TrainingDropout ? 0 : scale;
        return mask;
    }

    /// <summary>w·(h ⊙ mask) + b of one hidden row (no mask: evaluation), accumulated in double.</summary>
    public double Score(ReadOnlySpan<float> hiddenRow, float[]? mask = null)
    {
        float[] w = Weight.Data;
        double sum = Bias.Data[0];
        for (int i = 0; i < w.Length; i++) sum += (double)w[i] * hiddenRow[i] * (mask is null ? 1 : mask[i]);
        return sum;
    }

    /// <summary>
    /// Scores whole sequences (prompt and response ids) with <paramref name="model"/> as it stands (its adapters
    /// applied): batches of <paramref name="batchSize"/> right-padded, one cached forward each at positions 0..T−1,
    /// the value head at each sequence's last token. The reward of PPO and of <c>sharptune score</c>.
    /// </summary>
    public double[] ScoreSequences(DecoderModel model, IReadOnlyList<int[]> sequences, int batchSize, CancellationToken cancellation = default)
    {
        if (model.Config.HiddenSize != HiddenSize)
            throw new ArgumentException($"the value head reads {HiddenSize} hidden values but the model's hidden_size is {model.Config.HiddenSize}");
        if (batchSize <= 0) throw new ArgumentException($"the batch size must be positive, got {batchSize}");
        var scores = new double[sequences.Count];
        for (int start = 0; start < sequences.Count; start += batchSize)
        {
            cancellation.ThrowIfCancellationRequested();
            int b = Math.Min(batchSize, sequences.Count - start);
            int t = 0;
            for (int r = 0; r < b; r++)
                t = Math.Max(t, sequences[start + r].Length > 0 ? sequences[start + r].Length : throw new ArgumentException($"sequence {start + r} is empty"));
            var ids = new int[b * t];
            var positions = new int[b * t];
            var mask = new byte[b * t];
            for (int r = 0; r < b; r++)
                for (int i = 0; i < t; i++)
                {
                    positions[r * t + i] = i;
                    if (i >= sequences[start + r].Length) continue;
                    ids[r * t + i] = sequences[start + r][i];
                    mask[r * t + i] = 1;
                }
            var hidden = model.Backend.Allocate(b * t, HiddenSize);
            model.Forward(ids, positions, mask, b, t, model.CreateCache(b, t), hidden);
            var last = new float[HiddenSize];
            for (int r = 0; r < b; r++)
            {
                model.Backend.CopyToHost(hidden, (long)(r * t + sequences[start + r].Length - 1) * HiddenSize, last);
                scores[start + r] = Score(last);
            }
        }
        return scores;
    }

    /// <summary>
    /// The backward of <see cref="Score"/> for an upstream gradient <paramref name="g"/>: adds g·(h ⊙ mask) to the
    /// weight's gradient and g to the bias's, and g·(w ⊙ mask) to <paramref name="dHiddenRow"/>.
    /// </summary>
    public void Backward(ReadOnlySpan<float> hiddenRow, double g, Span<float> dHiddenRow, float[]? mask = null)
    {
        float[] w = Weight.Data, dw = Weight.Grad;
        for (int i = 0; i < w.Length; i++)
        {
            double m = mask is null ? 1 : mask[i];
            dw[i] += (float)(g * hiddenRow[i] * m);
            dHiddenRow[i] += (float)(g * w[i] * m);
        }
        Bias.Grad[0] += (float)g;
    }
}
