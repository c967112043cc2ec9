using System.Text.Json;
using SharpTune.Hparams;
using SharpTune.IO;
using SharpTune.Model;

namespace SharpTune.Inference;

/// <summary>Decoding settings, with Hugging Face GenerationConfig's names and meanings.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 512;
    /// <summary>false = greedy (argmax after the logits processors).</summary>
    public bool DoSample { get; init; }
    public float Temperature { get; init; } = 1f;
    /// <summary>0 disables top-k.</summary>
    public int TopK { get; init; }
    /// <summary>1 disables top-p (nucleus) filtering.</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>1 disables the repetition penalty.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>0 disables the no-repeat-n-gram ban.</summary>
    public int NoRepeatNgramSize { get; init; }
    public int? Seed { get; init; }
    /// <summary>Token ids that end generation (the eos id is not part of the returned text).</summary>
    public IReadOnlySet<int> StopTokenIds { get; init; } = new HashSet<int>();

    /// <summary>These options with a config's generation keys (LLaMA-Factory's generating arguments) in place of their own.</summary>
    public GenerationOptions With(GeneratingArguments g) => this with
    {
        DoSample = g.DoSample,
        Temperature = (float)g.Temperature,
        TopP = (float)g.TopP,
        TopK = g.TopK,
        MaxNewTokens = g.MaxNewTokens,
        RepetitionPenalty = (float)g.RepetitionPenalty,
    };

    public void Validate()
    {
        if (MaxNewTokens < 0) throw new ArgumentException($"max_new_tokens must be ≥ 0, got {MaxNewTokens}");
        if (DoSample && !(Temperature > 0)) throw new ArgumentException($"temperature must be > 0 when sampling, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"top_k must be ≥ 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top_p must be in (0, 1], got {TopP}");
        if (!(RepetitionPenalty > 0)) throw new ArgumentException($"repetition_penalty must be > 0, got {RepetitionPenalty}");
        if (NoRepeatNgramSize < 0) throw new ArgumentException($"no_repeat_ngram_size must be ≥ 0, got {NoRepeatNgramSize}");
    }

    /// <summary>
    /// Defaults from a model folder's generation_config.json (sampling settings and eos ids) merged with
    /// config.json's eos_token_id; a folder without the file gives greedy decoding with config.json's eos.
    /// </summary>
    public static GenerationOptions FromModelFolder(string dir, ModelConfig config)
    {
        var stop = new HashSet<int>(config.EosTokenIds);
        var options = new GenerationOptions();
        string path = ModelFolder.GenerationConfigPath(dir);
        if (File.Exists(path))
        {
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(File.ReadAllText(path));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
            }
            using var owned = doc;
            var reader = new JsonConfigReader(doc.RootElement, path, message => new ModelFolderException(message));
            foreach (int id in reader.OptionalIntOrList("eos_token_id", min: 0)) stop.Add(id);
            options = options with
            {
                DoSample = reader.OptionalBool("do_sample") ?? false,
                Temperature = (float)(reader.OptionalDouble("temperature") ?? 1.0),
                TopK = reader.OptionalInt("top_k") ?? 50,
                TopP = (float)(reader.OptionalDouble("top_p") ?? 1.0),
                RepetitionPenalty = (float)(reader.OptionalDouble("repetition_penalty") ?? 1.0),
                NoRepeatNgramSize = reader.OptionalInt("no_repeat_ngram_size") ?? 0,
                MaxNewTokens = reader.OptionalInt("max_new_tokens") ?? options.MaxNewTokens,
            };
        }
        return options with { StopTokenIds = stop };
    }
}
