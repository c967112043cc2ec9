namespace SharpTune.Hparams;

public enum FinetuningType { Lora, Full, Freeze, PromptTuning, PTuning, PrefixTuning }

/// <summary>LLaMA-Factory's fine-tuning arguments (defaults as in its hparams/finetuning_args.py).</summary>
public sealed class FinetuningArguments
{
    /// <summary>stage: "sft" (supervised fine-tuning) or "pt" (continued pretraining on plain text).</summary>
    public string Stage { get; set; } = "sft";
    public FinetuningType FinetuningType { get; set; } = FinetuningType.Lora;

    public int LoraRank { get; set; } = 8;
    /// <summary>
    /// The largest lora_rank accepted: full rank for the layers of any model in use, and small enough that rank × a
    /// layer's width (up to 65535) still fits an array.
    /// </summary>
    public const int MaxLoraRank = 32768;
    /// <summary>lora_alpha as written; null (or 0) means 2 × lora_rank, see <see cref="EffectiveLoraAlpha"/>.</summary>
    public int? LoraAlpha { get; set; }
    public double LoraDropout { get; set; }
    /// <summary>lora_target: ["all"] (every linear layer but lm_head) or module names such as q_proj, v_proj.</summary>
    public List<string> LoraTarget { get; set; } = ["all"];
    /// <summary>additional_target: modules besides the LoRA layers that are trained in full and saved with the adapter.</summary>
    public List<string> AdditionalTarget { get; set; } = [];
    public bool UseRslora { get; set; }

    /// <summary>freeze_trainable_layers: the last N decoder layers are trained (the first N when negative).</summary>
    public int FreezeTrainableLayers { get; set; } = 2;
    /// <summary>freeze_trainable_modules: ["all"] or module names inside those layers (e.g. mlp, self_attn).</summary>
    public List<string> FreezeTrainableModules { get; set; } = ["all"];
    /// <summary>freeze_extra_modules: modules outside the decoder layers also trained (e.g. embed_tokens, norm).</summary>
    public List<string> FreezeExtraModules { get; set; } = [];

    /// <summary>
    /// num_virtual_tokens (prompt_tuning, p_tuning, prefix_tuning; PEFT's field, no default): positions put before
    /// every sequence.
    /// </summary>
    public int? NumVirtualTokens { get; set; }
    /// <summary>prompt_tuning_init: RANDOM (normal, as nn.Embedding), TEXT (the embeddings of prompt_tuning_init_text's tokens, repeated or cut to num_virtual_tokens) or SAMPLE_VOCAB (random vocabulary rows).</summary>
    public string PromptTuningInit { get; set; } = "RANDOM";
    public string? PromptTuningInitText { get; set; }
    /// <summary>encoder_reparameterization_type (p_tuning): MLP or LSTM.</summary>
    public string EncoderReparameterizationType { get; set; } = "MLP";
    /// <summary>encoder_hidden_size (p_tuning's encoder, prefix_tuning's projection); null means PEFT's default, token_dim.</summary>
    public int? EncoderHiddenSize { get; set; }
    /// <summary>encoder_num_layers (p_tuning with LSTM; PEFT's MLP always has three Linears).</summary>
    public int EncoderNumLayers { get; set; } = 2;
    /// <summary>encoder_dropout (p_tuning with LSTM: between its layers).</summary>
    public double EncoderDropout { get; set; }
    /// <summary>prefix_projection (prefix_tuning): the prefix comes from an embedding through Linear → tanh → Linear.</summary>
    public bool PrefixProjection { get; set; }

    /// <summary>finetuning_type as the YAML spells it (lora, full, freeze, prompt_tuning, p_tuning, prefix_tuning).</summary>
    public string MethodName => FinetuningType switch
    {
        FinetuningType.PromptTuning => "prompt_tuning",
        FinetuningType.PTuning => "p_tuning",
        FinetuningType.PrefixTuning => "prefix_tuning",
        var other => other.ToString().ToLowerInvariant(),
    };

    /// <summary>Whether the method is one of PEFT's prompt-learning methods, which add positions rather than train weights.</summary>
    public bool IsPromptLearning => FinetuningType is FinetuningType.PromptTuning or FinetuningType.PTuning or FinetuningType.PrefixTuning;

    /// <summary>plot_loss: save the training (and evaluation) loss curves after training.</summary>
    public bool PlotLoss { get; set; }

    /// <summary>LLaMA-Factory's <c>lora_alpha or lora_rank * 2</c>.</summary>
    public int EffectiveLoraAlpha => LoraAlpha is > 0 ? LoraAlpha.Value : 2 * LoraRank;

    /// <summary>
    /// Adapters to load or continue need LoRA: the key and the problem when <paramref name="adapterCount"/> adapters
    /// are given to another method, else null. The one statement of the rule: the config parser reports it at the
    /// key's line, <see cref="FineTuning.TrainableModels.CheckCombination"/> for arguments built in code.
    /// </summary>
    public (string Key, string Problem)? RefusedAdapters(int adapterCount) =>
        adapterCount > 0 && FinetuningType != FinetuningType.Lora && !IsPromptLearning
            ? ("adapter_name_or_path", "adapters are only valid with finetuning_type: lora or a prompt-learning method (prompt_tuning, p_tuning, prefix_tuning)")
            : adapterCount > 1 && IsPromptLearning
                ? ("adapter_name_or_path", $"finetuning_type {MethodName} continues a single adapter: a prompt or prefix is not a weight merge, so earlier adapters cannot be folded into the base")
                : null;
}
