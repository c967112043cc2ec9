using SharpTune.Model;
using SharpTune.Training.Model;

namespace SharpTune.Training.Ppo;

/// <summary>
/// Stage ppo's <c>reward_model_type: lora</c>, as LLaMA-Factory's create_reward_model and replace_model use it: the
/// reward model is an adapter (trained by stage rm) on the same base decoder as the policy, with its value head. To
/// score, the reward adapter's tuners stand in for the policy's (<see cref="DecoderModel.UseAdapterInstead"/>), each
/// query and response is scored together by the reward head at the last token (<see cref="ValueHead.ScoreSequences"/>),
/// and the policy's adapter is back in place afterwards. A folder without value_head.safetensors is refused, as
/// LLaMA-Factory asserts "Reward model is not correctly loaded".
/// </summary>
public sealed class LoraRewardModel
{
    private readonly DecoderModel _decoder;
    private readonly IModelAdapter _adapter;

    public ValueHead Head { get; }

    private LoraRewardModel(DecoderModel decoder, IModelAdapter adapter, ValueHead head)
    {
        _decoder = decoder;
        _adapter = adapter;
        Head = head;
    }

    /// <param name="decoder">The policy's decoder, whose base weights the reward adapter was trained on.</param>
    /// <exception cref="FileNotFoundException">The adapter folder has no value_head.safetensors.</exception>
    /// <exception cref="InvalidDataException">The adapter does not fit the decoder, or is not one of tuner layers only.</exception>
    public static LoraRewardModel Load(DecoderModel decoder, string adapterDirectory)
    {
        string headFile = Path.Combine(adapterDirectory, ValueHead.FileName);
        if (!File.Exists(headFile))
            throw new FileNotFoundException($"reward_model: {adapterDirectory} has no {ValueHead.FileName}; a LoRA reward model trained with stage rm saves one beside its adapter", headFile);
        var adapter = AdapterFolders.Read(adapterDirectory);
        var head = ValueHead.Load(headFile, decoder.Config.HiddenSize);
        // Swapped in once now, so an adapter that does not fit the model stops the run before any step.
        using (decoder.UseAdapterInstead(adapter)) { }
        return new LoraRewardModel(decoder, adapter, head);
    }

    /// <summary>One score per sample, the samples scored in batches of <paramref name="batchSize"/> with the reward adapter swapped in.</summary>
    public double[] Score(IReadOnlyList<PpoSample> samples, int batchSize)
    {
        using (_decoder.UseAdapterInstead(_adapter))
            return Head.ScoreSequences(_decoder, [.. samples.Select(s => (int[])[.. s.Query, .. s.Response])], batchSize);
    }
}
