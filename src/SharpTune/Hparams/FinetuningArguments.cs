namespace SharpTune.Hparams;

public enum FinetuningType { Lora, Full, Freeze, Ia3, BitFit, Adapter }

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

    /// <summary>ia3_target: PEFT's IA3 target_modules, ["all"] or Linear names; the default is PEFT's for Qwen2/LLaMA-style attention.</summary>
    public List<string> Ia3Target { get; set; } = ["q_proj", "v_proj", "down_proj"];
    /// <summary>ia3_feedforward: PEFT's feedforward_modules, the targets whose input (not output) is scaled.</summary>
    public List<string> Ia3Feedforward { get; set; } = ["down_proj"];

    /// <summary>bitfit_extra_modules: modules whose weights BitFit trains beside every bias (norms: input_layernorm, post_attention_layernorm, norm).</summary>
    public List<string> BitFitExtraModules { get; set; } = [];

    /// <summary>adapter_reduction_factor: the bottleneck adapters' hidden size ÷ bottleneck width (the adapters library's reduction_factor).</summary>
    public double AdapterReductionFactor { get; set; } = 16;
    /// <summary>adapter_non_linearity: the bottleneck's activation, the adapters library's non_linearity name (swish or relu).</summary>
    public string AdapterNonLinearity { get; set; } = "swish";

    /// <summary>freeze_trainable_layers: the last N decoder layers are trained (the first N when negative).</summary>
    public int FreezeTrainableLayers { get; set; } = 2;
    /// <summary>freeze_trainable_modules: ["all"] or module names inside those layers (e.g. mlp, self_attn).</summary>
    public List<string> FreezeTrainableModules { get; set; } = ["all"];
    /// <summary>freeze_extra_modules: modules outside the decoder layers also trained (e.g. embed_tokens, norm).</summary>
    public List<string> FreezeExtraModules { get; set; } = [];

    /// <summary>plot_loss: save the training (and evaluation) loss curves after training.</summary>
    public bool PlotLoss { get; set; }

    /// <summary>LLaMA-Factory's <c>lora_alpha or lora_rank * 2</c>.</summary>
    public int EffectiveLoraAlpha => LoraAlpha is > 0 ? LoraAlpha.Value : 2 * LoraRank;

    /// <summary>
    /// Adapters to load or continue need an adapter method (lora, ia3, bitfit, adapter): the key and the problem when
    /// <paramref name="adapterCount"/> adapters are given to another method, else null. The one statement of the rule:
    /// the config parser reports it at the key's line, <see cref="FineTuning.TrainableModels.CheckCombination"/> for
    /// arguments built in code.
    /// </summary>
    public (string Key, string Problem)? RefusedAdapters(int adapterCount) =>
        adapterCount > 0 && FinetuningType is FinetuningType.Full or FinetuningType.Freeze
            ? ("adapter_name_or_path", "adapters are only valid with an adapter method (finetuning_type: lora, ia3, bitfit or adapter)")
            : null;
}
