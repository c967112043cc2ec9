using System.Text.Json;
using SharpTune.IO;
using SharpTune.Hub;
using SharpTune.Model;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace SharpTune.Hparams;

/// <summary>What a config is about to be used for; decides which requirements <see cref="SftConfig.Validate"/> checks.</summary>
public enum ConfigUse { Train, Export, Chat, Api, Eval }

/// <summary>
/// One parsed LLaMA-Factory YAML config: the argument groups LLaMA-Factory splits it into, plus notes about
/// accepted-but-ignored keys for the user. Every key goes through the registry in <c>ConfigKeys</c>: supported keys
/// are read with their type checked, ignored ones add a note, unsupported features stop with the reason, and
/// unknown keys stop with the closest known key as a suggestion.
/// </summary>
public sealed class SftConfig
{
    private static string HubHint =>
        $"nor a model in the Hugging Face cache ({HubCache.Root()}); give a folder or a Hub id (ORG/NAME), which is downloaded on first use";

    public ModelArguments Model { get; } = new();
    public DataArguments Data { get; } = new();
    public FinetuningArguments Finetuning { get; } = new();
    public TrainingArguments Training { get; } = new();
    public ExportArguments Export { get; } = new();
    public GeneratingArguments Generating { get; } = new();
    public EvaluationArguments Evaluation { get; } = new();

    /// <summary>Messages about keys that were accepted without effect (e.g. bf16), for the start-up log.</summary>
    public List<string> Notes { get; } = [];

    /// <summary>Whether <paramref name="name"/> is a config key (supported, ignored or refused; see docs/config.md).</summary>
    public static bool IsKey(string name) => ConfigKeys.All.ContainsKey(name);

    /// <summary>
    /// Reads a YAML config file, applies command-line overrides (<c>key=value</c>, value parsed as YAML, applied after
    /// the file as LLaMA-Factory's CLI does), resolves relative paths against the working directory and checks it for
    /// <paramref name="use"/> (model folder present, required keys set; see <see cref="Validate"/>).
    /// </summary>
    /// <exception cref="ConfigException">Any unusable key or value; the message names it.</exception>
    public static SftConfig Load(string yamlPath, IReadOnlyList<string> overrides, ConfigUse use)
    {
        if (!File.Exists(yamlPath)) throw new FileNotFoundException($"config file '{yamlPath}' does not exist", yamlPath);
        var config = Parse(File.ReadAllText(yamlPath), overrides, Environment.CurrentDirectory, Path.GetFileName(yamlPath));
        config.FetchFromHub(Environment.CurrentDirectory);
        config.Validate(use);
        return config;
    }

    /// <summary>
    /// A config from <c>key=value</c> pairs alone (another front end's arguments mapped onto LLaMA-Factory's keys:
    /// <c>sharptune swift</c>), fetched from the Hub and checked for <paramref name="use"/> as <see cref="Load"/> does.
    /// </summary>
    /// <exception cref="ConfigException">Any unusable key or value; the message names it.</exception>
    public static SftConfig FromPairs(IReadOnlyList<string> pairs, ConfigUse use, string sourceName)
    {
        var config = Parse("", pairs, Environment.CurrentDirectory, sourceName);
        config.FetchFromHub(Environment.CurrentDirectory);
        config.Validate(use);
        return config;
    }

    /// <summary>
    /// Parses YAML text and overrides as <see cref="Load"/> does, with relative paths resolved against
    /// <paramref name="workingDirectory"/> (default: the current directory), without looking at the model folder.
    /// </summary>
    public static SftConfig Parse(string yamlText, IReadOnlyList<string>? overrides = null, string? workingDirectory = null) =>
        Parse(yamlText, overrides ?? [], workingDirectory ?? Environment.CurrentDirectory, "config");

    private static SftConfig Parse(string yamlText, IReadOnlyList<string> overrides, string workingDirectory, string sourceName)
    {
        // Keys in the order written, so errors and notes follow the file; a later value (an override, or the other
        // spelling of an aliased key) replaces the earlier one and moves to the end.
        var entries = new OrderedDictionary<string, ConfigValue>(StringComparer.Ordinal);
        var config = new SftConfig();
        var pairs = ReadDocument(yamlText, sourceName).Concat(overrides.Select(ReadOverride)).ToList();

        // The stage first: it decides which of the other keys apply, so a stage that is not LLaMA-Factory's is the
        // first thing to report.
        if (pairs.FindLast(pair => pair.Key == "stage") is { Value: { } stage }) ConfigKeys.Stage(stage);

        foreach (var (key, value) in pairs)
        {
            if (!ConfigKeys.All.TryGetValue(key, out var entry))
            {
                string? suggestion = ConfigKeys.Suggest(key);
                throw new ConfigException($"unknown key {MessageText.Quote(key)}{(suggestion is null ? "" : $" (did you mean '{suggestion}'?)")} ({value.Origin})");
            }
            if (entry.AliasOf is not null) config.Notes.Add($"{key} is the old name of {entry.AliasOf}");
            string canonical = entry.AliasOf ?? key;
            entries.Remove(canonical);
            entries.Add(canonical, value);
        }

        // Unsupported features are reported before any value is read, so the message names the feature that blocks
        // the config rather than an unrelated value next to it.
        foreach (var (key, value) in entries)
        {
            var entry = ConfigKeys.All[key];
            if (entry.Status == KeyStatus.Unsupported && entry.IsInert?.Invoke(value) != true)
                throw new ConfigException($"{key} is not supported: {entry.Reason} ({value.Origin})");
        }
        foreach (var (key, value) in entries)
        {
            var entry = ConfigKeys.All[key];
            if (entry.Status == KeyStatus.Supported) entry.Apply!(config, value);
            else if (entry.Status == KeyStatus.Ignored && entry.IsInert?.Invoke(value) != true)
                config.Notes.Add($"{key} is ignored: {entry.Reason}");
        }

        config.ApplyLlamaFactoryDefaults(entries);
        config.CheckValues(entries);
        config.NoteAlignmentKeysOfOtherStages(entries);
        config.ResolvePaths(workingDirectory);
        return config;
    }

    /// <summary>
    /// Checks what <paramref name="use"/> needs from the file system and the config: the model (and adapter) folders
    /// exist locally and hold an unquantized checkpoint; training has its dataset folder, export an export_dir.
    /// </summary>
    public void Validate(ConfigUse use)
    {
        string model = Model.ModelNameOrPath;
        if (!Directory.Exists(model))
            throw new ConfigException($"model_name_or_path: '{model}' is not a local folder {HubHint}");
        ModelFolder.Validate(model);
        RefuseQuantizedCheckpoint(model);
        foreach (string adapter in Model.AdapterNameOrPath)
        {
            if (!Directory.Exists(adapter))
                throw new ConfigException($"adapter_name_or_path: '{adapter}' is not a local folder nor a Hub id (ORG/NAME) to download");
        }

        switch (use)
        {
            case ConfigUse.Train:
                ValidateAlignmentModels();
                if (!Training.DoTrain && !Training.DoEval && !Training.DoPredict)
                    throw new ConfigException("none of do_train, do_eval and do_predict is true: nothing to do (set do_train: true)");
                if ((Data.Dataset.Count > 0 || Data.EvalDataset.Count > 0) && !Directory.Exists(Data.DatasetDir))
                    throw new ConfigException($"dataset_dir: '{Data.DatasetDir}' does not exist");
                if (Training.ResumeFromCheckpoint is { } checkpoint && !Directory.Exists(checkpoint))
                    throw new ConfigException($"resume_from_checkpoint: '{checkpoint}' does not exist");
                break;
            case ConfigUse.Eval:
                if (Evaluation.Task is null) throw new ConfigException("task: required for eval (e.g. mmlu_test, cmmlu_test, ceval_validation)");
                if (!Directory.Exists(Evaluation.TaskDir)) throw new ConfigException($"task_dir: '{Evaluation.TaskDir}' does not exist");
                if (Evaluation.SaveDir is { } saveDir && Path.Exists(saveDir))
                    throw new ConfigException($"save_dir: '{saveDir}' already exists, use another one");
                break;
            case ConfigUse.Export:
                if (Export.ExportDir.Length == 0) throw new ConfigException("export_dir: required for export");
                if (SamePath(Export.ExportDir, model))
                    throw new ConfigException($"export_dir: '{Export.ExportDir}' is the base model folder; choose another folder");
                break;
        }
    }

    /// <summary>
    /// The reference and reward models the stage uses exist as folders (a Hub id was downloaded by
    /// <see cref="FetchFromHub"/>); a reward model of type api is a URL and is not looked at.
    /// </summary>
    private void ValidateAlignmentModels()
    {
        if (UsedByStage("ref_model") && Finetuning.RefModel is { } refModel)
        {
            if (!Directory.Exists(refModel)) throw new ConfigException($"ref_model: '{refModel}' is not a local folder {HubHint}");
            ModelFolder.Validate(refModel);
        }
        if (UsedByStage("reward_model") && Finetuning.RewardModelType != "api" && Finetuning.RewardModel is { } rewardModel && !Directory.Exists(rewardModel))
            throw new ConfigException($"reward_model: '{rewardModel}' is not a local folder {HubHint}");
        foreach (var (key, adapters) in new[] { ("ref_model_adapters", Finetuning.RefModelAdapters), ("reward_model_adapters", Finetuning.RewardModelAdapters) })
        {
            foreach (string adapter in adapters)
            {
                if (UsedByStage(key) && !Directory.Exists(adapter))
                    throw new ConfigException($"{key}: '{adapter}' is not a local folder nor a Hub id (ORG/NAME) to download");
            }
        }
    }

    /// <summary>Whether the config's stage reads the alignment key <paramref name="key"/> (<see cref="ConfigKeys.AlignmentKeyStages"/>).</summary>
    private bool UsedByStage(string key) => ConfigKeys.AlignmentKeyStages[key].Contains(Finetuning.Stage);

    /// <summary>An alignment key written for a stage that does not read it has no effect, as in LLaMA-Factory; a note says so.</summary>
    private void NoteAlignmentKeysOfOtherStages(IReadOnlyDictionary<string, ConfigValue> entries)
    {
        foreach (var (key, value) in entries)
        {
            if (ConfigKeys.AlignmentKeyStages.TryGetValue(key, out var stages) && !value.IsNull && !stages.Contains(Finetuning.Stage))
                Notes.Add($"{key} is ignored: it only applies to stage {string.Join(", ", stages)}, not stage {Finetuning.Stage}");
        }
    }

    /// <summary>The LLaMA-Factory and transformers post-processing that turns the keys into the values a run uses.</summary>
    private void ApplyLlamaFactoryDefaults(IReadOnlyDictionary<string, ConfigValue> entries)
    {
        // data_args.__post_init__ lowers cutoff_len only for packing written in the config; the parser then turns an
        // unset packing on for stage pt, at full cutoff_len.
        if (!entries.TryGetValue("packing", out var packing) || packing.IsNull) Data.Packing = Finetuning.Stage == "pt";
        else if (Data.Packing) Data.CutoffLen -= 1;
        // get_train_args turns packing on for neat_packing after __post_init__, so cutoff_len stays as written then.
        if (Data.NeatPacking) Data.Packing = true;
        // LLaMA-Factory enables checkpointing unless told not to; transformers' own key can still ask for it.
        Training.GradientCheckpointing |= !Model.DisableGradientCheckpointing;
        if (Training.EvalStrategy != "no") Training.DoEval = true;
        if (Training.EvalStrategy == "steps") Training.EvalSteps ??= Training.LoggingSteps;
    }

    /// <summary>
    /// The cross-key checks LLaMA-Factory and transformers make when the arguments are built; a message cites where the
    /// named key was written when it was written at all.
    /// </summary>
    private void CheckValues(IReadOnlyDictionary<string, ConfigValue> entries)
    {
        ConfigException Error(string key, string problem) =>
            entries.TryGetValue(key, out var value) ? value.Error(problem) : new ConfigException($"{key}: {problem}");

        if (Model.ModelNameOrPath.Length == 0) throw Error("model_name_or_path", "required");
        if (Data.ValSize >= 1 && Data.ValSize != Math.Floor(Data.ValSize))
            throw Error("val_size", $"a value of 1 or more is a number of examples and must be whole, got {Data.ValSize}");
        if (Data.ValSize > 0 && Data.Dataset.Count == 0) throw Error("val_size", "needs dataset to split from");
        if (Data.RefusedPair() is { } pair) throw Error(pair.Key, pair.Problem);
        if (Finetuning.Stage != "sft")
        {
            // LLaMA-Factory's parser allows these for supervised fine-tuning only.
            foreach (var (key, set) in new[] { ("train_on_prompt", Data.TrainOnPrompt), ("mask_history", Data.MaskHistory), ("predict_with_generate", Training.PredictWithGenerate) })
                if (set) throw Error(key, $"applies to stage sft only, not stage {Finetuning.Stage}");
        }
        if (Finetuning.Stage is not ("sft" or "pt") && Data.Packing)
            throw Error(Data.NeatPacking && !entries.ContainsKey("packing") ? "neat_packing" : "packing", $"applies to stages sft and pt only, not stage {Finetuning.Stage} (LLaMA-Factory's processors of the alignment stages do not pack)");
        CheckAlignmentValues(Error);
        if (Data.CutoffLen < 1) throw Error("cutoff_len", "must be at least 2 with packing (packing lowers it by one)");
        if (Data.DatasetDir.StartsWith("REMOTE:", StringComparison.Ordinal))
            throw Error("dataset_dir", $"'{Data.DatasetDir}' names a Hub dataset folder; SharpTune reads local datasets only");

        if (Finetuning.RefusedAdapters(Model.AdapterNameOrPath.Count) is { } adapters) throw Error(adapters.Key, adapters.Problem);
        if (Model.QuantizationBit is not null && !Finetuning.LeavesBaseFrozen)
            throw Error("quantization_bit", $"quantized weights cannot be trained, so finetuning_type {Finetuning.MethodName} cannot use quantization; use finetuning_type: lora (QLoRA)");
        if (Model.QuantizationBit is not null && Model.AdapterNameOrPath.Count > 1)
            throw Error("adapter_name_or_path", "a quantized model takes a single adapter; merge the earlier adapters into the base first (sharptune export)");
        if (Finetuning.UseRslora && Finetuning.FinetuningType != FinetuningType.Lora)
            throw Error("use_rslora", "only valid with finetuning_type: lora");
        // A new prompt-learning adapter needs its length; serving, exporting or continuing one reads it from the folder.
        if (Finetuning.IsPromptLearning && Finetuning.NumVirtualTokens is null && Training.DoTrain && Model.AdapterNameOrPath.Count == 0)
            throw Error("num_virtual_tokens", $"required to train finetuning_type: {Finetuning.MethodName} (PEFT has no default)");
        if (Finetuning.FinetuningType == FinetuningType.PromptTuning && Finetuning.PromptTuningInit == "TEXT" && string.IsNullOrEmpty(Finetuning.PromptTuningInitText))
            throw Error("prompt_tuning_init_text", "required with prompt_tuning_init: TEXT");

        if (Training.DoTrain && Data.Dataset.Count == 0) throw Error("dataset", "required for training (do_train: true)");
        if (Training.DoTrain && Training.OutputDir.Length == 0) throw Error("output_dir", "required for training (do_train: true)");
        if (Training.DoEval && Data.EvalDataset.Count == 0 && Data.ValSize == 0)
            throw Error("do_eval", "needs eval_dataset or val_size (evaluation is on because of do_eval or eval_strategy)");
        if ((Training.DoEval || Training.DoPredict) && Training.OutputDir.Length == 0)
            throw Error("output_dir", $"required for {(Training.DoPredict ? "prediction (do_predict: true)" : "evaluation (do_eval: true)")}: the results are written there");
        // Stage rm predicts scores, not text: LLaMA-Factory asks for predict_with_generate in sft only.
        if (Training.DoPredict && !Training.PredictWithGenerate && Finetuning.Stage != "rm")
            throw Error("do_predict", "needs predict_with_generate: true to save model predictions (as LLaMA-Factory requires)");
        if (Training.PredictWithGenerate && Training.DoTrain)
            throw Error("predict_with_generate", "cannot be used while training (do_train: true); predict with the trained adapter in a separate run");
        if (Training.PredictWithGenerate && Training.DoEval)
            throw Error("predict_with_generate", "generation-based evaluation (do_eval with predict_with_generate) is not available; use do_predict for generated predictions and their BLEU/ROUGE, or do_eval without predict_with_generate for eval_loss");
        if (Training.DoPredict && Finetuning.Stage == "rm" && Data.EvalDataset.Count == 0 && Data.ValSize == 0)
            throw Error("do_predict", "needs eval_dataset or val_size: the reward model scores the evaluation pairs");
        if (Training.DoPredict && Finetuning.Stage != "rm" && Data.EvalDataset.Count == 0)
            throw Error("do_predict", "needs eval_dataset: predictions are generated for its prompts and compared with its answers");
        if (Training.DoPredict && Generating.DoSample && !(Generating.Temperature > 0))
            throw Error("temperature", "must be greater than 0 when sampling (do_sample: true); set do_sample: false for greedy decoding");
        CheckSchedulerKwargs(Error);
    }

    /// <summary>The checks of LLaMA-Factory's finetuning_args and parser on the alignment stages' keys.</summary>
    private void CheckAlignmentValues(Func<string, string, ConfigException> error)
    {
        string stage = Finetuning.Stage;
        if (stage == "dpo" && Finetuning.PrefLoss != "sigmoid" && Finetuning.DpoLabelSmoothing > 1e-6)
            throw error("dpo_label_smoothing", $"is only valid for pref_loss: sigmoid, not {Finetuning.PrefLoss}");
        if (stage == "dpo" && Finetuning.PrefBcoWeight > 1e-6)
            throw error("pref_bco_weight", "LLaMA-Factory's BCO term (its reward baseline a running mean over the steps, TRL's RunningMoments) is not available; set pref_bco_weight: 0");
        if (stage != "ppo") return;
        if (Finetuning.RewardModel is null)
            throw error("reward_model", "is necessary for stage ppo: the adapter folder (reward_model_type lora), model folder (full) or API URL (api) that scores the answers");
        if (Finetuning.RewardModelType == "lora" && Finetuning.FinetuningType != FinetuningType.Lora)
            throw error("reward_model_type", $"cannot be lora for finetuning_type {Finetuning.FinetuningType.ToString().ToLowerInvariant()} (a LoRA reward model is an adapter on the LoRA-trained model); use reward_model_type: full");
        if (!Training.DoTrain)
            throw error("do_train", "stage ppo only trains (LLaMA-Factory's PPO does not evaluate; evaluate the model with stage sft)");
    }

    /// <summary>transformers hands lr_scheduler_kwargs to the schedule function, which rejects names it does not take.</summary>
    private void CheckSchedulerKwargs(Func<string, string, ConfigException> error)
    {
        string type = Training.LrSchedulerType;
        string[] accepted = type switch
        {
            "cosine" => ["num_cycles"],
            "cosine_with_min_lr" => ["num_cycles", "min_lr", "min_lr_rate"],
            _ => [],
        };
        foreach (string name in Training.LrSchedulerKwargs.Keys)
        {
            if (!accepted.Contains(name))
                throw error("lr_scheduler_kwargs", $"{MessageText.Quote(name)} does not apply to lr_scheduler_type '{type}' (accepted: {(accepted.Length == 0 ? "none" : string.Join(", ", accepted))})");
        }
        if (type == "cosine_with_min_lr")
        {
            bool hasMinLr = Training.LrSchedulerKwargs.ContainsKey("min_lr");
            bool hasRate = Training.LrSchedulerKwargs.ContainsKey("min_lr_rate");
            if (hasMinLr == hasRate)
                throw error("lr_scheduler_kwargs", "cosine_with_min_lr needs exactly one of min_lr and min_lr_rate");
        }
    }

    /// <summary>
    /// Relative paths resolve against the working directory, as in LLaMA-Factory. Model and adapter names resolve only
    /// when such a local folder exists: anything else is a Hub id to transformers, kept as written for the message.
    /// </summary>
    private void ResolvePaths(string workingDirectory)
    {
        if (Model.ModelNameOrPath.Length > 0 && HubCache.Resolve(Model.ModelNameOrPath, Model.ModelRevision, workingDirectory) is var (folder, hubId))
            (Model.ModelNameOrPath, Model.HubId) = (folder, hubId);
        Model.AdapterNameOrPath = Model.AdapterNameOrPath.Select(a => ResolveIfFolder(a, workingDirectory)).ToList();
        // The reference and reward models are loaded as LLaMA-Factory loads them: from model arguments copied from the
        // model's, so a Hub id resolves at model_revision.
        if (Finetuning.RefModel is { } refModel && HubCache.Resolve(refModel, Model.ModelRevision, workingDirectory) is var (refFolder, _))
            Finetuning.RefModel = refFolder;
        if (Finetuning.RewardModelType != "api" && Finetuning.RewardModel is { } rewardModel
            && HubCache.Resolve(rewardModel, Model.ModelRevision, workingDirectory) is var (rewardFolder, _))
            Finetuning.RewardModel = rewardFolder;
        Finetuning.RefModelAdapters = Finetuning.RefModelAdapters.Select(a => ResolveIfFolder(a, workingDirectory)).ToList();
        Finetuning.RewardModelAdapters = Finetuning.RewardModelAdapters.Select(a => ResolveIfFolder(a, workingDirectory)).ToList();
        Data.DatasetDir = Path.GetFullPath(Data.DatasetDir, workingDirectory);
        if (Training.OutputDir.Length > 0) Training.OutputDir = Path.GetFullPath(Training.OutputDir, workingDirectory);
        if (Training.ResumeFromCheckpoint is { } checkpoint) Training.ResumeFromCheckpoint = Path.GetFullPath(checkpoint, workingDirectory);
        if (Export.ExportDir.Length > 0) Export.ExportDir = Path.GetFullPath(Export.ExportDir, workingDirectory);
        Evaluation.TaskDir = Path.GetFullPath(Evaluation.TaskDir, workingDirectory);
        if (Evaluation.SaveDir is { } saveDir) Evaluation.SaveDir = Path.GetFullPath(saveDir, workingDirectory);
    }

    /// <summary>
    /// A model or adapter named by a Hub id that the cache does not hold is downloaded now (its config, weights and
    /// tokenizer files), as transformers and PEFT would fetch it; <see cref="Parse"/> itself never goes online.
    /// </summary>
    private void FetchFromHub(string workingDirectory)
    {
        var settings = HubSettings.FromEnvironment();
        // A Hub id Parse found in the cache is looked at again: its snapshot may lack model files.
        string model = Model.HubId ?? Model.ModelNameOrPath;
        try
        {
            if (model.Length > 0 && HubDownload.ResolveModel(model, Model.ModelRevision, workingDirectory, settings, Console.Error) is var (folder, hubId))
                (Model.ModelNameOrPath, Model.HubId) = (folder, hubId);
        }
        catch (HubException e)
        {
            throw new ConfigException($"model_name_or_path: '{model}' is not a local folder, and as a Hub id: {e.Message}");
        }
        string Fetch(string key, string name, string revision)
        {
            try
            {
                return HubDownload.ResolveModel(name, revision, workingDirectory, settings, Console.Error)?.Folder ?? name;
            }
            catch (HubException e)
            {
                throw new ConfigException($"{key}: '{name}' is not a local folder, and as a Hub id: {e.Message}");
            }
        }
        Model.AdapterNameOrPath = Model.AdapterNameOrPath.Select(adapter => Fetch("adapter_name_or_path", adapter, "main")).ToList();
        // Only the models the stage loads are downloaded.
        if (UsedByStage("ref_model") && Finetuning.RefModel is { } refModel)
            Finetuning.RefModel = Fetch("ref_model", refModel, Model.ModelRevision);
        if (UsedByStage("reward_model") && Finetuning.RewardModelType != "api" && Finetuning.RewardModel is { } rewardModel)
            Finetuning.RewardModel = Fetch("reward_model", rewardModel, Model.ModelRevision);
        if (UsedByStage("ref_model_adapters"))
            Finetuning.RefModelAdapters = Finetuning.RefModelAdapters.Select(adapter => Fetch("ref_model_adapters", adapter, "main")).ToList();
        if (UsedByStage("reward_model_adapters"))
            Finetuning.RewardModelAdapters = Finetuning.RewardModelAdapters.Select(adapter => Fetch("reward_model_adapters", adapter, "main")).ToList();
    }

    private static string ResolveIfFolder(string path, string workingDirectory)
    {
        string full = Path.GetFullPath(path, workingDirectory);
        return Directory.Exists(full) ? full : path;
    }

    private static bool SamePath(string a, string b) =>
        string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(a)), Path.TrimEndingDirectorySeparator(Path.GetFullPath(b)), StringComparison.Ordinal);

    /// <summary>GPTQ/AWQ/AQLM/bitsandbytes checkpoints carry a quantization_config in config.json.</summary>
    private static void RefuseQuantizedCheckpoint(string modelDir)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(ModelFolder.ConfigPath(modelDir)));
        if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("quantization_config", out var quantization))
        {
            string method = quantization.ValueKind == JsonValueKind.Object && quantization.TryGetProperty("quant_method", out var m) ? m.ToString() : "unknown";
            throw new ConfigException($"model_name_or_path: '{modelDir}' is a quantized checkpoint (quant_method: {method}); SharpTune trains and merges unquantized bf16/fp16/fp32 checkpoints only");
        }
    }

    private static IEnumerable<(string Key, ConfigValue Value)> ReadDocument(string yamlText, string sourceName)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yamlText));
        }
        catch (YamlException e)
        {
            throw new ConfigException($"{sourceName} is not valid YAML: {e.Message.ReplaceLineEndings(" ")} (line {e.Start.Line})");
        }
        if (stream.Documents.Count == 0) return [];
        if (stream.Documents.Count > 1) throw new ConfigException($"{sourceName} holds {stream.Documents.Count} YAML documents; a config is one mapping");
        var root = stream.Documents[0].RootNode;
        if (root is YamlScalarNode { Value: null or "" }) return [];
        if (root is not YamlMappingNode mapping) throw new ConfigException($"{sourceName} is not a mapping of keys to values");
        return mapping.Children.Select(pair =>
        {
            string key = pair.Key is YamlScalarNode { Value: { } k } ? k : throw new ConfigException($"{sourceName} line {pair.Key.Start.Line}: keys must be plain names");
            return (key, new ConfigValue(key, pair.Value, $"line {pair.Key.Start.Line} of {sourceName}"));
        }).ToList();
    }

    /// <summary>One <c>key=value</c> override; the value is YAML, so <c>learning_rate=1e-4</c> and <c>lr_scheduler_kwargs={min_lr: 1.0e-6}</c> work.</summary>
    private static (string Key, ConfigValue Value) ReadOverride(string text)
    {
        int equals = text.IndexOf('=');
        if (equals <= 0) throw new ConfigException($"override {MessageText.Quote(text)} is not key=value");
        string key = text[..equals].Trim();
        if (key.Contains('.'))
            throw new ConfigException($"override {MessageText.Quote(text)}: nested keys are not supported; write the whole value, e.g. {key[..key.IndexOf('.')]}={{name: value}}");
        string origin = $"command-line override {MessageText.Quote(text)}";
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text[(equals + 1)..]));
        }
        catch (YamlException e)
        {
            throw new ConfigException($"override {MessageText.Quote(text)}: the value is not valid YAML ({e.Message.ReplaceLineEndings(" ")})");
        }
        YamlNode node = stream.Documents.Count == 0 ? new YamlScalarNode("") : stream.Documents[0].RootNode;
        return (key, new ConfigValue(key, node, origin));
    }
}
