namespace SharpTune.Hparams;

public enum FinetuningType { Lora, Full, Freeze, Ia3, BitFit, Adapter, PromptTuning, PTuning, PrefixTuning }

/// <summary>LLaMA-Factory's fine-tuning arguments (defaults as in its hparams/finetuning_args.py).</summary>
public sealed class FinetuningArguments
{
    /// <summary>Every <c>finetuning_type</c> value training accepts, as written in a config.</summary>
    public static readonly IReadOnlyList<string> FinetuningTypeNames = ["lora", "full", "freeze", "ia3", "bitfit", "adapter", "prompt_tuning", "p_tuning", "prefix_tuning"];

    /// <summary>
    /// stage: "sft" (supervised fine-tuning), "pt" (continued pretraining on plain text), or one of the alignment
    /// stages "rm" (reward model), "dpo" (DPO and its pref_loss variants), "kto" and "ppo".
    /// </summary>
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

    /// <summary>
    /// Whether the method trains only tensors of its own (or biases and norms, which are never quantised) and leaves the
    /// projections' weights frozen, so they may be quantised (QLoRA and its kin): every method but full and freeze.
    /// </summary>
    public bool LeavesBaseFrozen => FinetuningType is not (FinetuningType.Full or FinetuningType.Freeze);

    /// <summary>plot_loss: save the training (and evaluation) loss curves after training.</summary>
    public bool PlotLoss { get; set; }

    // LLaMA-Factory's RLHFArguments: the settings of stages rm, ppo, dpo and kto, with its defaults.

    /// <summary>pref_beta: β of the preference losses (DPO and its variants, KTO).</summary>
    public double PrefBeta { get; set; } = 0.1;
    /// <summary>pref_ftx: the weight of the supervised loss on the chosen answers added to the DPO or KTO loss.</summary>
    public double PrefFtx { get; set; }
    /// <summary>pref_bco_weight: the weight of the BCO loss added to the DPO loss.</summary>
    public double PrefBcoWeight { get; set; }
    /// <summary>The pref_loss values SharpTune implements (LLaMA-Factory's list less kto_pair).</summary>
    public static readonly string[] PrefLosses = ["sigmoid", "hinge", "ipo", "orpo", "simpo"];
    /// <summary>pref_loss: the loss of stage dpo, one of <see cref="PrefLosses"/>; sigmoid is DPO's.</summary>
    public string PrefLoss { get; set; } = "sigmoid";
    /// <summary>dpo_label_smoothing: cDPO's label smoothing in [0, 0.5], with pref_loss sigmoid only.</summary>
    public double DpoLabelSmoothing { get; set; }
    /// <summary>simpo_gamma: SimPO's target reward margin.</summary>
    public double SimpoGamma { get; set; } = 0.5;
    /// <summary>kto_chosen_weight: the weight of KTO's desirable losses.</summary>
    public double KtoChosenWeight { get; set; } = 1.0;
    /// <summary>kto_rejected_weight: the weight of KTO's undesirable losses.</summary>
    public double KtoRejectedWeight { get; set; } = 1.0;
    /// <summary>ppo_buffer_size: mini-batches that make the experience buffer of one PPO optimisation step.</summary>
    public int PpoBufferSize { get; set; } = 1;
    /// <summary>ppo_epochs: epochs over the experience buffer per PPO optimisation step.</summary>
    public int PpoEpochs { get; set; } = 4;
    /// <summary>ppo_score_norm: normalise the reward model's scores.</summary>
    public bool PpoScoreNorm { get; set; }
    /// <summary>ppo_target: the target KL of the adaptive KL controller.</summary>
    public double PpoTarget { get; set; } = 6.0;
    /// <summary>ppo_whiten_rewards: whiten the rewards before computing advantages.</summary>
    public bool PpoWhitenRewards { get; set; }
    /// <summary>
    /// ref_model: the reference model of stages dpo, kto and ppo, a folder (a Hub id resolves to its snapshot's folder
    /// as model_name_or_path does); null uses the model being trained, without its trained adapter for LoRA.
    /// </summary>
    public string? RefModel { get; set; }
    /// <summary>ref_model_adapters: adapter folders applied to the reference model, in order.</summary>
    public List<string> RefModelAdapters { get; set; } = [];
    /// <summary>ref_model_quantization_bit: 4 or 8 quantises the reference model on load; null keeps it as stored.</summary>
    public int? RefModelQuantizationBit { get; set; }
    /// <summary>
    /// reward_model: stage ppo's reward model: with reward_model_type lora an adapter folder (on the model being
    /// trained), with full a model folder (both resolved as model_name_or_path is), with api the URL of a scoring API.
    /// </summary>
    public string? RewardModel { get; set; }
    /// <summary>reward_model_adapters: adapter folders applied to a full reward model.</summary>
    public List<string> RewardModelAdapters { get; set; } = [];
    /// <summary>reward_model_quantization_bit: 4 or 8 quantises a full reward model on load.</summary>
    public int? RewardModelQuantizationBit { get; set; }
    /// <summary>reward_model_type: lora, full or api (see <see cref="RewardModel"/>).</summary>
    public string RewardModelType { get; set; } = "lora";

    /// <summary>LLaMA-Factory's <c>use_ref_model</c>: stage dpo with a loss that compares against a reference (not orpo or simpo).</summary>
    public bool UseRefModel => Stage == "dpo" && PrefLoss is not ("orpo" or "simpo");

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
            ? ("adapter_name_or_path", "adapters are only valid with an adapter method (finetuning_type: lora, ia3, bitfit, adapter, prompt_tuning, p_tuning or prefix_tuning)")
            : adapterCount > 1 && IsPromptLearning
                ? ("adapter_name_or_path", $"finetuning_type {MethodName} continues a single adapter: a prompt or prefix is not a weight merge, so earlier adapters cannot be folded into the base")
                : null;
}
