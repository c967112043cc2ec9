using SharpTune.Quantization;
using SharpTune.Training.Model;

namespace SharpTune.Training.Ppo;

/// <summary>
/// Stage ppo's <c>reward_model_type: full</c>, as LLaMA-Factory's create_reward_model loads it: the reward_model
/// folder for inference with reward_model_adapters applied (quantised per reward_model_quantization_bit), and the value
/// head from the last adapter folder, else from the model folder. Its get_rewards scores each query and response
/// together, right-padded, by the value head at the last token (<see cref="ValueHead.ScoreSequences"/>).
/// LLaMA-Factory keeps a randomly initialised head (with a warning) when neither folder holds one; that would train
/// the policy towards noise, so here it is refused naming the folder.
/// </summary>
public sealed class FullRewardModel : IDisposable
{
    public DecoderModel Decoder { get; }
    public ValueHead Head { get; }

    private FullRewardModel(DecoderModel decoder, ValueHead head)
    {
        Decoder = decoder;
        Head = head;
    }

    /// <exception cref="FileNotFoundException">The folder the value head is read from has no value_head.safetensors.</exception>
    public static FullRewardModel Load(string modelDirectory, IReadOnlyList<string> adapterDirectories, QuantizationOptions? quantization)
    {
        string headFolder = adapterDirectories.Count > 0 ? adapterDirectories[^1] : modelDirectory;
        string headFile = Path.Combine(headFolder, ValueHead.FileName);
        if (!File.Exists(headFile))
            throw new FileNotFoundException($"reward_model: {headFolder} has no {ValueHead.FileName}; a reward model trained with stage rm saves one beside its weights or adapter", headFile);
        var decoder = DecoderModel.LoadForGeneration(modelDirectory, adapterDirectories: adapterDirectories, quantization: quantization);
        try
        {
            return new FullRewardModel(decoder, ValueHead.Load(headFile, decoder.Config.HiddenSize));
        }
        catch
        {
            decoder.Dispose();
            throw;
        }
    }

    /// <summary>One score per sample, the samples scored in batches of <paramref name="batchSize"/>.</summary>
    public double[] Score(IReadOnlyList<PpoSample> samples, int batchSize) =>
        Head.ScoreSequences(Decoder, [.. samples.Select(s => (int[])[.. s.Query, .. s.Response])], batchSize);

    public void Dispose() => Decoder.Dispose();
}
