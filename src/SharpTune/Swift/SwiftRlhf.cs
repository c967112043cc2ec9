namespace SharpTune.Swift;

/// <summary>
/// <c>swift rlhf --rlhf_type T</c> as one of SharpTune's LLaMA-Factory stages: the stage, the data it reads, its keys
/// (LLaMA-Factory's RLHFArguments names) and the values args.json records under ms-swift's names.
/// </summary>
public sealed record SwiftRlhfPlan(string Type, string Stage, SwiftRlhfData Data, IReadOnlyList<(string Key, object Value)> Pairs,
    IReadOnlyList<KeyValuePair<string, object?>> Args, IReadOnlyList<string> Notes);

/// <summary>
/// ms-swift 3.x's RLHFArguments mapped onto the stages of docs/config.md: dpo, orpo and simpo are stage dpo with
/// <c>pref_loss</c> sigmoid/hinge/ipo, orpo or simpo; kto is stage kto; rm is stage rm; ppo is stage ppo with a full
/// reward model. Defaults are ms-swift's (beta 0.1, simpo's 2.0; rpo_alpha 1, cpo_alpha 1, simpo_gamma 1). cpo and an
/// argument that does not apply to the type are refused naming themselves.
/// </summary>
public static class SwiftRlhf
{
    public static readonly string[] Types = ["dpo", "orpo", "simpo", "kto", "rm", "ppo"];

    /// <summary>The types each type-specific argument applies to (ms-swift ignores the others; SharpTune refuses them).</summary>
    private static readonly Dictionary<string, string[]> AppliesTo = new(StringComparer.Ordinal)
    {
        ["beta"] = ["dpo", "orpo", "simpo", "kto"],
        ["loss_type"] = ["dpo", "simpo", "kto"],
        ["label_smoothing"] = ["dpo"],
        ["rpo_alpha"] = ["dpo"],
        ["cpo_alpha"] = ["simpo"],
        ["simpo_gamma"] = ["simpo"],
        ["desirable_weight"] = ["kto"],
        ["undesirable_weight"] = ["kto"],
        ["ref_model"] = ["dpo", "kto", "ppo"],
        ["reward_model"] = ["ppo"],
        ["reward_adapters"] = ["ppo"],
        ["num_ppo_epochs"] = ["ppo"],
        ["whiten_rewards"] = ["ppo"],
        ["temperature"] = ["ppo"],
        ["max_completion_length"] = ["ppo"],
    };

    /// <exception cref="ArgumentException">An unsupported type, loss or value, or an argument of another type; the message names it.</exception>
    public static SwiftRlhfPlan For(SwiftArguments a, string workingDirectory)
    {
        string type = a.Text("rlhf_type") ?? "dpo";
        if (type == "cpo")
            throw new ArgumentException("--rlhf_type cpo is not supported: CPO's reference-free sigmoid loss on summed log-probs is not one of SharpTune's preference losses (use --rlhf_type simpo, CPO-SimPO with cpo_alpha, or orpo)");
        if (!Types.Contains(type))
            throw new ArgumentException($"--rlhf_type {type} is not supported (SharpTune accepts: {string.Join(", ", Types)})");
        foreach (var (name, types) in AppliesTo)
        {
            if (a.Has(name) && !types.Contains(type))
                throw new ArgumentException($"--{name} does not apply to --rlhf_type {type} (it applies to {string.Join(", ", types)})");
        }

        var pairs = new List<(string Key, object Value)>();
        var args = new List<KeyValuePair<string, object?>> { new("rlhf_type", type) };
        var notes = new List<string>();
        void Both(string swiftName, string key, object value)
        {
            pairs.Add((key, value));
            args.Add(new(swiftName, value));
        }
        string? Model(string name) => a.Text(name) is { } m ? (Directory.Exists(Path.GetFullPath(m, workingDirectory)) ? Path.GetFullPath(m, workingDirectory) : m) : null;

        string stage;
        SwiftRlhfData data = SwiftRlhfData.Pairs;
        switch (type)
        {
            case "dpo":
                stage = "dpo";
                string loss = a.Choice("loss_type", "sigmoid", "hinge", "ipo") ?? "sigmoid";
                Both("loss_type", "pref_loss", loss);
                Both("beta", "pref_beta", a.Double("beta", min: 0) ?? 0.1);
                if (a.Double("label_smoothing", min: 0) is { } smoothing and > 0)
                {
                    if (loss != "sigmoid") throw new ArgumentException($"--label_smoothing applies to --loss_type sigmoid, not {loss}");
                    Both("label_smoothing", "dpo_label_smoothing", smoothing);
                }
                // ms-swift 3.x's rpo_alpha defaults to 1: DPO plus the chosen answers' NLL, which is LLaMA-Factory's pref_ftx.
                Both("rpo_alpha", "pref_ftx", a.Double("rpo_alpha", min: 0) ?? 1.0);
                break;
            case "orpo":
                stage = "dpo";
                Both("loss_type", "pref_loss", "orpo");
                Both("beta", "pref_beta", a.Double("beta", min: 0) ?? 0.1);
                break;
            case "simpo":
                stage = "dpo";
                Both("loss_type", "pref_loss", a.Choice("loss_type", "simpo") ?? "simpo");
                Both("beta", "pref_beta", a.Double("beta", min: 0) ?? 2.0);
                Both("simpo_gamma", "simpo_gamma", a.Double("simpo_gamma") ?? 1.0);
                // ms-swift's simpo is TRL's CPOTrainer with loss_type simpo: cpo_alpha (default 1) adds the chosen answers' NLL (CPO-SimPO).
                Both("cpo_alpha", "pref_ftx", a.Double("cpo_alpha", min: 0) ?? 1.0);
                break;
            case "kto":
                stage = "kto";
                data = SwiftRlhfData.Tagged;
                a.Choice("loss_type", "kto");
                Both("beta", "pref_beta", a.Double("beta", min: 0) ?? 0.1);
                Both("desirable_weight", "kto_chosen_weight", a.Double("desirable_weight", min: 0) ?? 1.0);
                Both("undesirable_weight", "kto_rejected_weight", a.Double("undesirable_weight", min: 0) ?? 1.0);
                break;
            case "rm":
                stage = "rm";
                break;
            default:
                stage = "ppo";
                data = SwiftRlhfData.Prompts;
                string rewardModel = Model("reward_model")
                    ?? throw new ArgumentException("--rlhf_type ppo needs --reward_model: a reward model folder with value_head.safetensors, or the base model with --reward_adapters CKPT (a checkpoint of swift rlhf --rlhf_type rm)");
                Both("reward_model", "reward_model", rewardModel);
                pairs.Add(("reward_model_type", "full"));
                if (a.List("reward_adapters") is { Count: > 0 } adapters)
                {
                    var folders = adapters.Select(d => Path.GetFullPath(d, workingDirectory)).ToList();
                    pairs.Add(("reward_model_adapters", string.Join(",", folders)));
                    args.Add(new("reward_adapters", folders.ToList<object?>()));
                }
                Both("num_ppo_epochs", "ppo_epochs", a.Int("num_ppo_epochs", min: 1) ?? 4);
                Both("whiten_rewards", "ppo_whiten_rewards", a.Bool("whiten_rewards") ?? false);
                // TRL's PPO samples with the temperature alone (top_k 0, top_p 1); ms-swift's defaults are 0.9 and 512 tokens.
                double temperature = a.Double("temperature", min: 0) ?? 0.9;
                if (temperature == 0) throw new ArgumentException("--temperature must be above 0 for --rlhf_type ppo (the policy samples its responses)");
                Both("temperature", "temperature", temperature);
                Both("max_completion_length", "max_new_tokens", a.Int("max_completion_length", min: 1) ?? 512);
                pairs.Add(("do_sample", true));
                pairs.Add(("top_k", 0));
                pairs.Add(("top_p", 1.0));
                notes.Add("--rlhf_type ppo runs TRL 0.9's PPOTrainer as LLaMA-Factory does (adaptive KL coefficient from 0.2); ms-swift 3.x runs TRL's newer PPOTrainer (fixed kl_coef 0.05)");
                break;
        }
        if (Model("ref_model") is { } refModel) Both("ref_model", "ref_model", refModel);
        return new SwiftRlhfPlan(type, stage, data, pairs, args, notes);
    }
}
