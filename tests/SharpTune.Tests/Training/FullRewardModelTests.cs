using SharpTune.Data;
using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Tests.IO;
using SharpTune.Tests.Model;
using SharpTune.Training.Model;
using SharpTune.Training.Objectives;
using SharpTune.Training.Ppo;

namespace SharpTune.Tests.Training;

/// <summary>
/// reward_model_type full: the reward model folder with its adapters and the value head LLaMA-Factory reads (the last
/// adapter's, else the model folder's), scoring query+response as the training forward scores the same sequences
/// (PairwiseRewardLoss.SequenceScores over FinalHidden, the path stage rm trains through).
/// </summary>
public sealed class FullRewardModelTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _model, _adapter;

    public FullRewardModelTests()
    {
        _model = Copy(TrainingFixtures.BaseModel, "model");
        _adapter = Copy(TrainingFixtures.LoraAdapter, "adapter");
    }

    public void Dispose() => _dir.Dispose();

    private string Copy(string from, string name)
    {
        string to = Path.Combine(_dir.Path, name);
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        return to;
    }

    private static PpoSample[] Samples()
    {
        int[] ids = ReferenceFixture.IntArray(new ReferenceFixture("qwen2-small-vocab").Reference.GetProperty("generation").GetProperty("prompt_ids"));
        return [new(ids[..2], ids[2..4]), new(ids[..3], ids[3..]), new(ids[1..2], ids[4..5])];
    }

    private static double[] TrainingForwardScores(DecoderModel decoder, ValueHead head, PpoSample[] samples)
    {
        var examples = samples.Select(s => (int[])[.. s.Query, .. s.Response])
            .Select(ids => new SupervisedExample(ids, [.. ids.Select(_ => 1)], ids)).ToList();
        var batch = SupervisedCollator.Collate(examples, padTokenId: 0);
        return PairwiseRewardLoss.SequenceScores(head, batch, decoder.FinalHidden(batch));
    }

    private ValueHead SaveHead(string folder, ulong seed)
    {
        int hidden = ModelConfig.Load(Path.Combine(_model, "config.json")).HiddenSize;
        var head = ValueHead.CreateNew(hidden, new SeededRandom(seed));
        head.Save(folder);
        return head;
    }

    [Fact]
    public void Without_adapters_the_model_folders_head_scores_each_query_and_response_at_its_last_token()
    {
        var head = SaveHead(_model, seed: 1);
        using var rewards = FullRewardModel.Load(_model, [], quantization: null);
        var scores = rewards.Score(Samples(), batchSize: 2);

        using var decoder = DecoderModel.Load(_model, gradientCheckpointing: false);
        var expected = TrainingForwardScores(decoder, head, Samples());
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], scores[i], 4);
        Assert.Equal(3, scores.Distinct().Count());
    }

    [Fact]
    public void With_adapters_the_last_adapters_head_scores_the_adapted_model()
    {
        var modelHead = SaveHead(_model, seed: 1);
        var adapterHead = SaveHead(_adapter, seed: 2);
        using var rewards = FullRewardModel.Load(_model, [_adapter], quantization: null);
        var scores = rewards.Score(Samples(), batchSize: 3);

        using var lora = LoraFineTuning.Resume(DecoderModel.Load(_model, gradientCheckpointing: false), _adapter);
        var expected = TrainingForwardScores(lora.Decoder, adapterHead, Samples());
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], scores[i], 4);
        var withModelHead = TrainingForwardScores(lora.Decoder, modelHead, Samples());
        Assert.NotEqual(withModelHead[0], scores[0], 4);
    }

    [Fact]
    public void A_reward_model_without_a_value_head_is_refused_naming_the_folder()
    {
        SaveHead(_model, seed: 1);
        var error = Assert.Throws<FileNotFoundException>(() => FullRewardModel.Load(_model, [_adapter], quantization: null));
        Assert.Equal($"reward_model: {_adapter} has no value_head.safetensors; a reward model trained with stage rm saves one beside its weights or adapter", error.Message);
    }
}
