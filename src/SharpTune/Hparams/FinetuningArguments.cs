namespace SharpTune.Hparams;

public enum FinetuningType { Lora, Full, Freeze }

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
    /// <summary>loraplus_lr_ratio: LoRA+'s lr_B / lr_A (Training/Optim/LoraPlus); null: one learning rate for all.</summary>
    public double? LoraplusLrRatio { get; set; }
    /// <summary>loraplus_lr_embedding: LoRA+'s learning rate of LoRA embedding B matrices.</summary>
    public double LoraplusLrEmbedding { get; set; } = 1e-6;
    /// <summary>
    /// create_new_adapter: with adapter_name_or_path, every adapter is merged into the base and a fresh one trained
    /// on top, instead of continuing the last (not on a quantized base, where nothing can be merged).
    /// </summary>
    public bool CreateNewAdapter { get; set; }
    /// <summary>pissa_init: PiSSA, the adapter taken from W's top singular triplets and the base left as the residual.</summary>
    public bool PissaInit { get; set; }
    /// <summary>pissa_iter: subspace iterations of the randomized SVD (torch.svd_lowrank's niter); −1 for the exact SVD.</summary>
    public int PissaIter { get; set; } = 16;
    /// <summary>pissa_convert: after training also save the adapter as a plain LoRA on the original base (output_dir/pissa_converted).</summary>
    public bool PissaConvert { get; set; }
    /// <summary>init_lora_weights (PEFT's name): "olora", "pissa" or "pissa_niter_N" take the adapter from the base weight; null for the default.</summary>
    public string? InitLoraWeights { get; set; }

    /// <summary>
    /// PEFT's init_lora_weights the run creates its adapters with: LLaMA-Factory's "pissa" / "pissa_niter_{pissa_iter}"
    /// for pissa_init, else init_lora_weights as given (null: PEFT's default).
    /// </summary>
    public string? EffectiveInitLoraWeights => PissaInit ? (PissaIter == -1 ? "pissa" : $"pissa_niter_{PissaIter}") : InitLoraWeights;
    /// <summary>use_dora: weight-decomposed LoRA (DoRA), a magnitude vector per wrapped Linear besides A and B.</summary>
    public bool UseDora { get; set; }

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
    /// Adapters to load or continue need LoRA: the key and the problem when <paramref name="adapterCount"/> adapters
    /// are given to another method, else null. The one statement of the rule: the config parser reports it at the
    /// key's line, <see cref="FineTuning.TrainableModels.CheckCombination"/> for arguments built in code.
    /// </summary>
    public (string Key, string Problem)? RefusedAdapters(int adapterCount) =>
        adapterCount > 0 && FinetuningType != FinetuningType.Lora ? ("adapter_name_or_path", "adapters are only valid with finetuning_type: lora") : null;
}
