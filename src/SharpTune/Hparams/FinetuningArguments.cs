namespace SharpTune.Hparams;

public enum FinetuningType { Lora, Full, Freeze }

/// <summary>LLaMA-Factory's fine-tuning arguments (defaults as in its hparams/finetuning_args.py).</summary>
public sealed class FinetuningArguments
{
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

    /// <summary>freeze_trainable_layers: the last N decoder layers are trained (the first N when negative).</summary>
    public int FreezeTrainableLayers { get; set; } = 2;
    /// <summary>freeze_trainable_modules: ["all"] or module names inside those layers (e.g. mlp, self_attn).</summary>
    public List<string> FreezeTrainableModules { get; set; } = ["all"];
    /// <summary>freeze_extra_modules: modules outside the decoder layers also trained (e.g. embed_tokens, norm).</summary>
    public List<string> FreezeExtraModules { get; set; } = [];

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
    /// Adapters to load or continue need LoRA: the key and the problem when <paramref name="adapterCount"/> adapters
    /// are given to another method, else null. The one statement of the rule: the config parser reports it at the
    /// key's line, <see cref="FineTuning.TrainableModels.CheckCombination"/> for arguments built in code.
    /// </summary>
    public (string Key, string Problem)? RefusedAdapters(int adapterCount) =>
        adapterCount > 0 && FinetuningType != FinetuningType.Lora ? ("adapter_name_or_path", "adapters are only valid with finetuning_type: lora") : null;
}
