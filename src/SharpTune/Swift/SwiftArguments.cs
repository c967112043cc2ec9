using System.Globalization;

namespace SharpTune.Swift;

/// <summary>The ms-swift commands SharpTune runs (`sharptune swift sft|infer|export|deploy|rlhf|eval`).</summary>
public enum SwiftCommand { Sft, Infer, Export, Deploy, Rlhf, Eval }

/// <summary>
/// ms-swift's command-line arguments (`--name value`, `--name=value`; list arguments take every value up to the next
/// `--name`), read into one set of values under their ms-swift 3.x names: the 1.x/2.x names the textbook uses are
/// taken as the 3.x argument they became, with a note; the textbook's `--sft_type qlora` and
/// `--eval_dataset_sample`, which no ms-swift release accepts, are taken as `lora` + 4-bit and as
/// `--val_dataset_sample`, with a note. An argument SharpTune does not implement, or one of another command, is refused
/// naming itself. The table of every accepted name is docs/swift.md.
/// </summary>
public sealed class SwiftArguments
{
    private sealed record Spec(SwiftCommand[] Commands, bool IsList = false, string? OldNameOf = null, string? Note = null);

    private static readonly SwiftCommand[] All = [SwiftCommand.Sft, SwiftCommand.Infer, SwiftCommand.Export, SwiftCommand.Deploy, SwiftCommand.Rlhf, SwiftCommand.Eval];
    // swift rlhf takes every argument of swift sft (ms-swift's RLHFArguments extend its TrainArguments).
    private static readonly SwiftCommand[] Sft = [SwiftCommand.Sft, SwiftCommand.Rlhf];
    private static readonly SwiftCommand[] Rlhf = [SwiftCommand.Rlhf];
    private static readonly SwiftCommand[] Generates = [SwiftCommand.Infer, SwiftCommand.Deploy, SwiftCommand.Eval];
    private static readonly SwiftCommand[] Deploy = [SwiftCommand.Deploy];
    private static readonly SwiftCommand[] Eval = [SwiftCommand.Eval];
    private static readonly SwiftCommand[] UsesAdapters = [SwiftCommand.Infer, SwiftCommand.Export, SwiftCommand.Deploy, SwiftCommand.Eval];

    private static readonly Dictionary<string, Spec> Specs = new(StringComparer.Ordinal)
    {
        // model and template
        ["model"] = new(All),
        ["model_id_or_path"] = new(All, OldNameOf: "model"),
        ["model_type"] = new(All),
        ["template"] = new(All),
        ["template_type"] = new(All, OldNameOf: "template"),
        ["system"] = new(All),
        ["torch_dtype"] = new(All),
        ["dtype"] = new(All, OldNameOf: "torch_dtype"),
        ["max_length"] = new(All),
        // quantization
        ["quant_method"] = new(All),
        ["quant_bits"] = new(All),
        ["quantization_bit"] = new(All, OldNameOf: "quant_bits", Note: "quantization_bit is ms-swift 2.x's name of --quant_method bnb --quant_bits"),
        ["bnb_4bit_quant_type"] = new(All),
        ["bnb_4bit_use_double_quant"] = new(All),
        // training
        ["train_type"] = new(Sft),
        ["sft_type"] = new(Sft, OldNameOf: "train_type"),
        ["dataset"] = new(Sft, IsList: true),
        ["split_dataset_ratio"] = new(Sft),
        ["dataset_test_ratio"] = new(Sft, OldNameOf: "split_dataset_ratio"),
        ["train_dataset_sample"] = new(Sft),
        ["val_dataset_sample"] = new(Sft),
        ["eval_dataset_sample"] = new(Sft, OldNameOf: "val_dataset_sample",
            Note: "--eval_dataset_sample is not an argument of any ms-swift release; taken as --val_dataset_sample, ms-swift 2.x's name for it"),
        ["lora_rank"] = new(Sft),
        ["lora_alpha"] = new(Sft),
        ["lora_dropout"] = new(Sft),
        ["target_modules"] = new(Sft, IsList: true),
        ["lora_target_modules"] = new(Sft, IsList: true, OldNameOf: "target_modules"),
        ["learning_rate"] = new(Sft),
        ["num_train_epochs"] = new(Sft),
        ["max_steps"] = new(Sft),
        ["per_device_train_batch_size"] = new(Sft),
        ["batch_size"] = new(Sft, OldNameOf: "per_device_train_batch_size"),
        ["per_device_eval_batch_size"] = new(Sft),
        ["eval_batch_size"] = new(Sft, OldNameOf: "per_device_eval_batch_size"),
        ["gradient_accumulation_steps"] = new(Sft),
        ["weight_decay"] = new(Sft),
        ["warmup_ratio"] = new(Sft),
        ["lr_scheduler_type"] = new(Sft),
        ["save_steps"] = new(Sft),
        ["eval_steps"] = new(Sft),
        ["logging_steps"] = new(Sft),
        ["save_total_limit"] = new(Sft),
        ["gradient_checkpointing"] = new(Sft),
        ["seed"] = new(Sft),
        ["output_dir"] = new([SwiftCommand.Sft, SwiftCommand.Rlhf, SwiftCommand.Export]),
        ["add_version"] = new(Sft),
        // preference training (ms-swift's RLHFArguments)
        ["rlhf_type"] = new(Rlhf),
        ["beta"] = new(Rlhf),
        ["loss_type"] = new(Rlhf),
        ["label_smoothing"] = new(Rlhf),
        ["rpo_alpha"] = new(Rlhf),
        ["cpo_alpha"] = new(Rlhf),
        ["simpo_gamma"] = new(Rlhf),
        ["desirable_weight"] = new(Rlhf),
        ["undesirable_weight"] = new(Rlhf),
        ["ref_model"] = new(Rlhf),
        ["reward_model"] = new(Rlhf),
        ["reward_adapters"] = new(Rlhf, IsList: true),
        ["num_ppo_epochs"] = new(Rlhf),
        ["whiten_rewards"] = new(Rlhf),
        ["max_completion_length"] = new(Rlhf),
        // evaluation (ms-swift's EvalArguments, run as evalscope's Native backend)
        ["eval_dataset"] = new(Eval, IsList: true),
        ["dataset_args"] = new(Eval),
        ["eval_limit"] = new(Eval),
        ["eval_backend"] = new(Eval),
        ["eval_output_dir"] = new(Eval),
        // inference and export
        ["adapters"] = new(UsesAdapters, IsList: true),
        ["ckpt_dir"] = new(UsesAdapters, OldNameOf: "adapters"),
        ["merge_lora"] = new(UsesAdapters),
        ["max_new_tokens"] = new(Generates),
        ["temperature"] = new([.. Generates, SwiftCommand.Rlhf]),
        ["top_k"] = new(Generates),
        ["top_p"] = new(Generates),
        ["repetition_penalty"] = new(Generates),
        // serving
        ["host"] = new(Deploy),
        ["port"] = new(Deploy),
        ["api_key"] = new(Deploy),
        ["served_model_name"] = new(Deploy),
    };

    /// <summary>ms-swift arguments SharpTune knows and does not implement, each with why.</summary>
    private static readonly Dictionary<string, string> Refused = new(StringComparer.Ordinal)
    {
        ["deepspeed"] = "SharpTune trains on one machine's CPU; there is no DeepSpeed",
        ["infer_backend"] = "SharpTune has one inference engine (its own); vllm, sglang and lmdeploy are not available",
        ["use_flash_attn"] = "attention is SharpTune's own CPU kernel",
        ["attn_impl"] = "attention is SharpTune's own CPU kernel",
        ["device_map"] = "SharpTune runs on the CPU",
        ["ddp_backend"] = "SharpTune trains in one process",
        ["val_dataset"] = "give the validation share with --split_dataset_ratio or --val_dataset_sample",
        ["streaming"] = "datasets are read whole",
        ["packing"] = "use `sharptune train` with packing: true",
        ["val_dataset_shuffle"] = "the validation split is LLaMA-Factory's val_size split",
        ["resume_from_checkpoint"] = "resume with `sharptune train` on the run's checkpoint",
        ["ref_model_type"] = "give the reference model's folder or hub id with --ref_model",
        ["ref_model_revision"] = "give the reference model's folder or hub id with --ref_model",
        ["reward_model_type"] = "give the reward model's folder with --reward_model (and its adapter with --reward_adapters)",
        ["reward_model_revision"] = "give the reward model's folder with --reward_model (and its adapter with --reward_adapters)",
        ["kl_coef"] = "SharpTune's PPO is TRL 0.9's, whose KL coefficient adapts from 0.2 (LLaMA-Factory's ppo_target)",
        ["cliprange"] = "SharpTune's PPO clips the policy ratio at TRL's 0.2",
        ["cliprange_value"] = "SharpTune's PPO clips the value at TRL's 0.2",
        ["vf_coef"] = "SharpTune's PPO weighs the value loss by TRL's 0.1",
        ["gamma"] = "SharpTune's PPO uses TRL's γ 1",
        ["lam"] = "SharpTune's PPO uses TRL's λ 0.95",
        ["num_mini_batches"] = "SharpTune's PPO takes per_device_train_batch_size × gradient_accumulation_steps prompts per step",
        ["missing_eos_penalty"] = "SharpTune's PPO scores every response as the reward model gives it",
        ["eval_url"] = "swift eval runs the model in this process; evaluating a served model is not available",
        ["eval_num_proc"] = "swift eval generates in this process, one question at a time",
        ["eval_generation_config"] = "give --max_new_tokens and --temperature",
        ["extra_eval_args"] = "evalscope's extra arguments are not available",
        ["local_dataset"] = "named benchmarks are not downloaded; give local general_qa or general_mcq sets with --dataset_args",
    };

    private readonly Dictionary<string, IReadOnlyList<string>> values = new(StringComparer.Ordinal);

    /// <summary>What was taken other than as written (an old name, an invalid textbook argument), in the order given.</summary>
    public List<string> Notes { get; } = [];

    /// <summary>Every argument name <paramref name="command"/> accepts, 3.x names and old ones (the docs' table is checked against it).</summary>
    public static IEnumerable<string> AcceptedNames(SwiftCommand command) =>
        Specs.Where(s => s.Value.Commands.Contains(command)).Select(s => s.Key);

    /// <exception cref="ArgumentException">An unknown or refused argument, one of another command, a missing value, or one given twice; the message names it.</exception>
    public static SwiftArguments Parse(SwiftCommand command, IReadOnlyList<string> argv)
    {
        var parsed = new SwiftArguments();
        bool oldQuantizationBit = false;
        string commandName = command.ToString().ToLowerInvariant();
        for (int i = 0; i < argv.Count;)
        {
            string arg = argv[i++];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
                throw new ArgumentException($"swift {commandName}: '{arg}' is not an argument (ms-swift arguments are --name value)");
            string name = arg[2..];
            string? inline = null;
            if (name.IndexOf('=') is int eq and > 0) (name, inline) = (name[..eq], name[(eq + 1)..]);
            name = name.Replace('-', '_');

            if (Refused.TryGetValue(name, out var why))
                throw new ArgumentException($"swift {commandName}: --{name} is not supported: {why}");
            if (!Specs.TryGetValue(name, out var spec))
                throw new ArgumentException($"swift {commandName}: unknown argument --{name} (the accepted ones are listed in docs/swift.md)");
            if (!spec.Commands.Contains(command))
                throw new ArgumentException($"swift {commandName}: --{name} is not an argument of swift {commandName} (it belongs to swift {string.Join("/", spec.Commands.Select(c => c.ToString().ToLowerInvariant()))})");

            var list = new List<string>();
            if (inline is not null) list.Add(inline);
            else
            {
                while (i < argv.Count && !argv[i].StartsWith("--", StringComparison.Ordinal) && (spec.IsList || list.Count == 0))
                    list.Add(argv[i++]);
            }
            if (list.Count == 0)
                throw new ArgumentException($"swift {commandName}: --{name} needs a value");

            string key = spec.OldNameOf ?? name;
            if (parsed.values.ContainsKey(key))
                throw new ArgumentException($"swift {commandName}: --{name} is given twice{(spec.OldNameOf is null ? "" : $" (it is the old name of --{key})")}");
            if (spec.Note is not null) parsed.Notes.Add(spec.Note);
            else if (spec.OldNameOf is not null) parsed.Notes.Add($"--{name} is ms-swift 2.x's name of --{key}");
            parsed.values[key] = list;
            oldQuantizationBit |= name == "quantization_bit" && list[0] != "0";
        }
        // 2.x's --quantization_bit was bitsandbytes' alone.
        if (oldQuantizationBit) parsed.values.TryAdd("quant_method", ["bnb"]);
        return parsed;
    }

    public bool Has(string name) => values.ContainsKey(name);

    /// <summary>The one value of <paramref name="name"/> (its 3.x name), or null when not given.</summary>
    public string? Text(string name) => values.TryGetValue(name, out var v) ? v[0] : null;

    /// <summary>Every value of a list argument (empty when not given).</summary>
    public IReadOnlyList<string> List(string name) => values.TryGetValue(name, out var v) ? v : [];

    public int? Int(string name, int min = int.MinValue)
    {
        if (Text(name) is not { } text) return null;
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value) || value < min)
            throw new ArgumentException($"--{name} must be an integer{(min > int.MinValue ? $" ≥ {min}" : "")}, got '{text}'");
        return value;
    }

    public double? Double(string name, double min = double.NegativeInfinity)
    {
        if (Text(name) is not { } text) return null;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !(value >= min))
            throw new ArgumentException($"--{name} must be a number{(min > double.NegativeInfinity ? $" ≥ {min.ToString(CultureInfo.InvariantCulture)}" : "")}, got '{text}'");
        return value;
    }

    /// <summary>ms-swift's booleans: true/false (any case), 1/0.</summary>
    public bool? Bool(string name) => Text(name) switch
    {
        null => null,
        { } t when t.Equals("true", StringComparison.OrdinalIgnoreCase) || t == "1" => true,
        { } t when t.Equals("false", StringComparison.OrdinalIgnoreCase) || t == "0" => false,
        { } t => throw new ArgumentException($"--{name} must be true or false, got '{t}'"),
    };

    /// <summary>The value if it is one of <paramref name="choices"/>; otherwise an error naming the argument and the choices.</summary>
    public string? Choice(string name, params string[] choices)
    {
        if (Text(name) is not { } text) return null;
        return choices.Contains(text, StringComparer.Ordinal)
            ? text
            : throw new ArgumentException($"--{name} {text} is not supported (SharpTune accepts: {string.Join(", ", choices)})");
    }
}
