using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.Peft.PromptLearning;

/// <summary>
/// The configuration of PEFT's prompt-learning methods as adapter_config.json stores it (PEFT's PromptLearningConfig
/// and its three subclasses): <c>num_virtual_tokens</c>, <c>token_dim</c> (hidden size for virtual tokens; kv heads ·
/// head dim for a prefix, as PEFT stores it for grouped-query models), <c>num_attention_heads</c> (kv heads for a
/// prefix), <c>num_layers</c>, and the fields of each method. Fields are written in PEFT's dataclass order.
/// </summary>
public sealed record PromptLearningConfig
{
    public const string FileName = "adapter_config.json";
    public const string PromptTuning = "PROMPT_TUNING";
    public const string PTuning = "P_TUNING";
    public const string PrefixTuning = "PREFIX_TUNING";

    /// <summary>PROMPT_TUNING, P_TUNING or PREFIX_TUNING.</summary>
    public required string PeftType { get; init; }
    public required int NumVirtualTokens { get; init; }
    public required int TokenDim { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int NumLayers { get; init; }
    public string BaseModelNameOrPath { get; init; } = "";

    /// <summary>Prompt tuning: RANDOM, TEXT or SAMPLE_VOCAB.</summary>
    public string PromptTuningInit { get; init; } = "RANDOM";
    public string? PromptTuningInitText { get; init; }
    /// <summary>Prompt tuning with TEXT init: the tokenizer PEFT loads to encode the text (the base model's).</summary>
    public string? TokenizerNameOrPath { get; init; }

    /// <summary>P-tuning: MLP or LSTM.</summary>
    public string EncoderReparameterizationType { get; init; } = "MLP";
    /// <summary>P-tuning's encoder and prefix tuning's projection width; PEFT's default is token_dim.</summary>
    public int EncoderHiddenSize { get; init; }
    public int EncoderNumLayers { get; init; } = 2;
    public double EncoderDropout { get; init; }

    /// <summary>Prefix tuning: the prefix comes from embedding → Linear → tanh → Linear rather than being the parameter.</summary>
    public bool PrefixProjection { get; init; }

    public static readonly string[] PeftTypes = [PromptTuning, PTuning, PrefixTuning];

    /// <exception cref="InvalidDataException">The file is unreadable, or a field is missing, of the wrong type or unsupported: "PATH: 'field' problem".</exception>
    public static PromptLearningConfig Load(string adapterDirectory) => PeftConfigFile.Read(adapterDirectory, (_, path, reader) =>
        {
            string peftType = reader.OptionalString("peft_type") ?? "";
            if (!PeftTypes.Contains(peftType))
                throw new InvalidDataException($"{path}: peft_type is {MessageText.Quote(peftType)}, not one of {string.Join(", ", PeftTypes)}");
            int submodules = reader.OptionalInt("num_transformer_submodules", min: 1) ?? 1;
            if (submodules != 1)
                throw new InvalidDataException($"{path}: 'num_transformer_submodules' is {submodules}; only decoder-only models (1) are supported");
            int tokenDim = reader.RequiredInt("token_dim", min: 1);
            var config = new PromptLearningConfig
            {
                PeftType = peftType,
                NumVirtualTokens = reader.RequiredInt("num_virtual_tokens", min: 1),
                TokenDim = tokenDim,
                NumAttentionHeads = reader.RequiredInt("num_attention_heads", min: 1),
                NumLayers = reader.RequiredInt("num_layers", min: 1),
                BaseModelNameOrPath = reader.OptionalString("base_model_name_or_path") ?? "",
                PromptTuningInit = reader.OptionalString("prompt_tuning_init") ?? "RANDOM",
                PromptTuningInitText = reader.OptionalString("prompt_tuning_init_text"),
                TokenizerNameOrPath = reader.OptionalString("tokenizer_name_or_path"),
                EncoderReparameterizationType = reader.OptionalString("encoder_reparameterization_type") ?? "MLP",
                EncoderHiddenSize = reader.OptionalInt("encoder_hidden_size", min: 1) ?? tokenDim,
                EncoderNumLayers = reader.OptionalInt("encoder_num_layers", min: 1) ?? 2,
                EncoderDropout = reader.OptionalDouble("encoder_dropout", min: 0) ?? 0,
                PrefixProjection = reader.OptionalBool("prefix_projection") ?? false,
            };
            if (peftType == PTuning && config.EncoderReparameterizationType is not ("MLP" or "LSTM"))
                throw new InvalidDataException($"{path}: 'encoder_reparameterization_type' is {MessageText.Quote(config.EncoderReparameterizationType)}, not MLP or LSTM");
            return config;
        });

    /// <summary>Writes adapter_config.json atomically with the fields PEFT writes for the method, in its order.</summary>
    public void Save(string adapterDirectory)
    {
        var json = new JsonObject
        {
            ["base_model_name_or_path"] = BaseModelNameOrPath,
            ["revision"] = null,
            ["task_type"] = "CAUSAL_LM",
            ["inference_mode"] = true,
            ["auto_mapping"] = null,
            ["peft_type"] = PeftType,
            ["num_virtual_tokens"] = NumVirtualTokens,
            ["token_dim"] = TokenDim,
            ["num_transformer_submodules"] = 1,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_layers"] = NumLayers,
        };
        switch (PeftType)
        {
            case PromptTuning:
                json["prompt_tuning_init"] = PromptTuningInit;
                json["prompt_tuning_init_text"] = PromptTuningInitText;
                json["tokenizer_name_or_path"] = TokenizerNameOrPath;
                json["tokenizer_kwargs"] = null;
                break;
            case PTuning:
                json["encoder_reparameterization_type"] = EncoderReparameterizationType;
                json["encoder_hidden_size"] = EncoderHiddenSize;
                json["encoder_num_layers"] = EncoderNumLayers;
                json["encoder_dropout"] = EncoderDropout;
                break;
            default:
                json["encoder_hidden_size"] = EncoderHiddenSize;
                json["prefix_projection"] = PrefixProjection;
                break;
        }
        json["modules_to_save"] = null;
        Directory.CreateDirectory(adapterDirectory);
        AtomicFile.WriteText(Path.Combine(adapterDirectory, FileName),
            json.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
    }
}
