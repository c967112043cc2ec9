using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Tokenization;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Peft.PromptLearning;

/// <summary>
/// Prompt tuning, P-tuning and prefix tuning: the decoder stays frozen and a model tuner adds positions before every
/// sequence (<see cref="DecoderModel.AttachModelTuner"/>). Saves what PEFT saves, the tuner's output as
/// <c>prompt_embeddings</c>; training checkpoints keep the trainable parameters themselves (an encoder's weights for
/// P-tuning and prefix projection), so resuming continues exactly.
/// </summary>
public sealed class PromptLearningFineTuning : ITrainableModel
{
    public DecoderModel Decoder { get; }
    public PromptLearningConfig Config { get; }
    public IPromptLearningTuner Tuner { get; }
    public IReadOnlyList<Parameter> TrainableParameters => Tuner.Parameters;
    public long TotalParameterCount { get; }

    private PromptLearningFineTuning(DecoderModel decoder, PromptLearningConfig config, IPromptLearningTuner tuner, string source)
    {
        long baseCount = decoder.Tensors.Sum(t => t.Length);
        decoder.AttachModelTuner(tuner, source);
        Decoder = decoder;
        Config = config;
        Tuner = tuner;
        TotalParameterCount = baseCount + tuner.Parameters.Sum(p => (long)p.Length);
    }

    /// <summary>
    /// A new tuner as PEFT's get_peft_model builds it from the YAML's PEFT fields: token_dim is the hidden size (a
    /// prefix's is kv heads · head dim), encoder_hidden_size defaults to token_dim.
    /// </summary>
    /// <param name="modelDirectory">The base model folder, whose tokenizer encodes prompt_tuning_init_text.</param>
    public static PromptLearningFineTuning CreateNew(DecoderModel decoder, FinetuningArguments args, SeededRandom initRandom, string modelDirectory)
    {
        var c = decoder.Config;
        int n = args.NumVirtualTokens ?? throw new ArgumentException($"num_virtual_tokens: required with finetuning_type {args.MethodName}");
        if (n <= 0) throw new ArgumentException($"num_virtual_tokens must be positive, got {n}");
        bool prefix = args.FinetuningType == FinetuningType.PrefixTuning;
        int tokenDim = prefix ? c.KvWidth : c.HiddenSize;
        int encoderHidden = args.EncoderHiddenSize ?? tokenDim;
        var config = new PromptLearningConfig
        {
            PeftType = args.FinetuningType switch
            {
                FinetuningType.PromptTuning => PromptLearningConfig.PromptTuning,
                FinetuningType.PTuning => PromptLearningConfig.PTuning,
                _ => PromptLearningConfig.PrefixTuning,
            },
            NumVirtualTokens = n,
            TokenDim = tokenDim,
            NumAttentionHeads = prefix ? c.NumKvHeads : c.NumHeads,
            NumLayers = c.NumLayers,
            BaseModelNameOrPath = decoder.BaseModelName,
            PromptTuningInit = args.PromptTuningInit,
            PromptTuningInitText = args.PromptTuningInitText,
            TokenizerNameOrPath = args.PromptTuningInit == "TEXT" ? decoder.BaseModelName : null,
            EncoderReparameterizationType = args.EncoderReparameterizationType,
            EncoderHiddenSize = encoderHidden,
            EncoderNumLayers = args.EncoderNumLayers,
            EncoderDropout = args.EncoderDropout,
            PrefixProjection = args.PrefixProjection,
        };
        IPromptLearningTuner tuner = args.FinetuningType switch
        {
            FinetuningType.PromptTuning => new PromptEmbeddingTuner(new Parameter(PromptLearningAdapter.TensorName, [n, tokenDim],
                InitialPrompt(decoder, args, n, initRandom, modelDirectory))),
            FinetuningType.PTuning when args.EncoderReparameterizationType == "LSTM" =>
                new LstmPromptEncoderTuner(n, tokenDim, encoderHidden, args.EncoderNumLayers, (float)args.EncoderDropout, initRandom, decoder.Backend),
            FinetuningType.PTuning => new MlpPromptEncoderTuner(n, tokenDim, encoderHidden, initRandom, decoder.Backend),
            _ when args.PrefixProjection => new PrefixTuner(n, c.NumLayers, tokenDim, encoderHidden, initRandom, decoder.Backend),
            _ => new PrefixTuner(new Parameter(PromptLearningAdapter.TensorName, [n, c.NumLayers * 2 * tokenDim],
                EncoderActivations.Normal(n * c.NumLayers * 2 * tokenDim, initRandom)), c.NumLayers, tokenDim),
        };
        return new PromptLearningFineTuning(decoder, config, tuner, $"finetuning_type {args.MethodName}");
    }

    /// <summary>
    /// The lengths of the tensors <see cref="CreateNew"/> trains for these arguments on a model of this config, for
    /// the memory estimate before any weight is loaded.
    /// </summary>
    public static IReadOnlyList<int> ParameterLengths(FinetuningArguments args, ModelConfig c)
    {
        int n = args.NumVirtualTokens ?? 0;
        bool prefix = args.FinetuningType == FinetuningType.PrefixTuning;
        int d = prefix ? c.KvWidth : c.HiddenSize, h = args.EncoderHiddenSize ?? d;
        int Linear(int input, int output) => input * output + output;
        return args.FinetuningType switch
        {
            FinetuningType.PromptTuning => [n * d],
            FinetuningType.PTuning when args.EncoderReparameterizationType == "LSTM" =>
                [n * d, .. Enumerable.Range(0, args.EncoderNumLayers).Select(l => 2 * (Linear(l == 0 ? d : 2 * h, 4 * h) + Linear(h, 4 * h))), Linear(2 * h, 2 * h), Linear(2 * h, d)],
            FinetuningType.PTuning => [n * d, Linear(d, h), Linear(h, h), Linear(h, d)],
            _ when args.PrefixProjection => [n * d, Linear(d, h), Linear(h, c.NumLayers * 2 * d)],
            _ => [n * c.NumLayers * 2 * d],
        };
    }

    /// <summary>
    /// PEFT's PromptEmbedding initialisation: RANDOM as nn.Embedding (standard normal); SAMPLE_VOCAB the embedding
    /// rows of n random token ids; TEXT the rows of prompt_tuning_init_text's ids as the tokenizer encodes it (with the
    /// bos token when the tokenizer adds one), cut to n or repeated until n.
    /// </summary>
    private static float[] InitialPrompt(DecoderModel decoder, FinetuningArguments args, int n, SeededRandom random, string modelDirectory)
    {
        int h = decoder.Config.HiddenSize;
        int[] ids;
        switch (args.PromptTuningInit)
        {
            case "RANDOM":
                return EncoderActivations.Normal(n * h, random);
            case "SAMPLE_VOCAB":
                ids = Enumerable.Range(0, n).Select(_ => random.NextInt(decoder.Config.VocabSize)).ToArray();
                break;
            default:
                if (string.IsNullOrEmpty(args.PromptTuningInitText))
                    throw new ArgumentException("prompt_tuning_init_text: required with prompt_tuning_init TEXT");
                var tokenizer = Tokenizer.FromDirectory(modelDirectory);
                var text = tokenizer.Encode(args.PromptTuningInitText);
                if (TokenizerConfig.AddedBosToken(modelDirectory) is { } bos) text = [.. tokenizer.Encode(bos), .. text];
                if (text.Length == 0) throw new ArgumentException("prompt_tuning_init_text: encodes to no tokens");
                ids = Enumerable.Range(0, n).Select(i => text[i % text.Length]).ToArray();
                break;
        }
        var rows = new float[n * h];
        var embedding = decoder.Embedding;
        for (int i = 0; i < n; i++)
        {
            if (embedding.Frozen is { } frozen) frozen.ReadRows(ids[i], 1, rows.AsSpan(i * h, h));
            else Array.Copy(embedding.Data, (long)ids[i] * h, rows, i * h, h);
        }
        return rows;
    }

    /// <summary>
    /// Continues training a saved folder, evaluates it, or computes its gradients for `check grad`: the saved
    /// prompt_embeddings become the parameter. For prompt tuning and a plain prefix that is the method's own parameter;
    /// a P-tuning folder and a projected prefix hold only the encoder's output (what PEFT saves), so they continue on
    /// that output, which computes exactly what the folder serves. Their encoder's weights are in a run's
    /// checkpoint-N folders, from which resume_from_checkpoint continues the reparameterised training exactly.
    /// </summary>
    public static PromptLearningFineTuning Resume(DecoderModel decoder, string adapterDirectory)
    {
        var adapter = PromptLearningAdapter.Load(adapterDirectory);
        return new PromptLearningFineTuning(decoder, adapter.Config with { BaseModelNameOrPath = decoder.BaseModelName }, adapter.CreateTuner(), adapterDirectory);
    }

    public LossResult ForwardBackward(TrainingBatch batch, float gradScale, SeededRandom random) => Decoder.ForwardBackward(batch, gradScale, random);

    public LossResult Evaluate(TrainingBatch batch) => Decoder.Evaluate(batch);

    /// <summary>adapter_config.json + adapter_model.safetensors with prompt_embeddings, the tuner's output, as PEFT's save_pretrained writes them.</summary>
    public void Save(string directory)
    {
        var (shape, data) = Tuner.PromptEmbeddingsToSave();
        PromptLearningAdapter.Save(directory, Config, shape, data);
    }

    public void Dispose() => Decoder.Dispose();
}
