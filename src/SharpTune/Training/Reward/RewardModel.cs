using SharpTune.Data;
using SharpTune.Model;
using SharpTune.Training.Model;
using SharpTune.Training.Objectives;

namespace SharpTune.Training.Reward;

/// <summary>
/// Stage rm's trainable model, TRL's AutoModelForCausalLMWithValueHead as LLaMA-Factory trains it: the fine-tuning
/// method's model (adapter or weights) with a <see cref="ValueHead"/> on its final hidden states, both trained by the
/// pairwise loss. It saves as LLaMA-Factory saves it: the method's own files plus value_head.safetensors, in the output
/// folder and in every checkpoint.
/// </summary>
public sealed class RewardModel : ITrainableModel
{
    private readonly ITrainableModel _inner;

    public ValueHead Head { get; }
    public DecoderModel Decoder { get; }
    public IReadOnlyList<Parameter> TrainableParameters { get; }
    public long TotalParameterCount => _inner.TotalParameterCount + Head.HiddenSize + 1;

    /// <param name="inner">The method's model; its decoder carries the value head.</param>
    public RewardModel(ITrainableModel inner, ValueHead head)
    {
        Decoder = inner.Decoder ?? throw new ArgumentException("a reward model needs a decoder to put its value head on");
        if (head.HiddenSize != Decoder.Config.HiddenSize)
            throw new ArgumentException($"the value head reads {head.HiddenSize} hidden values but the model's hidden_size is {Decoder.Config.HiddenSize}");
        _inner = inner;
        Head = head;
        TrainableParameters = [.. inner.TrainableParameters, .. head.Parameters];
    }

    /// <summary>
    /// The value head LLaMA-Factory starts from: value_head.safetensors in the last adapter folder (or, without one, the
    /// model folder) when there is one, else a new head initialised from <paramref name="random"/>.
    /// </summary>
    public static ValueHead StartingHead(string modelDirectory, IReadOnlyList<string> adapterDirectories, int hiddenSize, SeededRandom random)
    {
        string folder = adapterDirectories.Count > 0 ? adapterDirectories[^1] : modelDirectory;
        return File.Exists(Path.Combine(folder, ValueHead.FileName)) ? ValueHead.Load(folder, hiddenSize) : ValueHead.CreateNew(hiddenSize, random);
    }

    /// <summary>Forward and backward of the pairwise loss (value-head dropout from <paramref name="random"/>); the scores it gave.</summary>
    public PairScores Train(TrainingBatch pairs, float gradScale, SeededRandom random)
    {
        var loss = new PairwiseRewardLoss(Head, random);
        Decoder.ForwardBackward(pairs, loss, objective: null, gradScale, random);
        return loss.Last!;
    }

    /// <summary>The pairwise scores without dropout or gradients.</summary>
    public PairScores Score(TrainingBatch pairs) => PairwiseRewardLoss.Evaluate(Head, pairs, Decoder.FinalHidden(pairs));

    /// <summary>The pairwise loss over the pairs (the sum over pairs, and the pairs it covers).</summary>
    public LossResult ForwardBackward(TrainingBatch batch, float gradScale, SeededRandom random) => Train(batch, gradScale, random).AsLoss;

    public LossResult Evaluate(TrainingBatch batch) => Score(batch).AsLoss;

    public void Save(string directory)
    {
        _inner.Save(directory);
        Head.Save(directory);
    }

    public void Dispose() => _inner.Dispose();
}
