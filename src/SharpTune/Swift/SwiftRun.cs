using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Data.Cleaning;
using SharpTune.Hparams;
using SharpTune.Inference;
using SharpTune.IO;
using SharpTune.Quantization;
using SharpTune.Training;

namespace SharpTune.Swift;

/// <summary>
/// ms-swift's arguments mapped onto SharpTune's LLaMA-Factory configs, and ms-swift's run layout:
/// <c>output_dir/vN-YYYYMMDD-HHMMSS/</c> holding <c>args.json</c> (the run's resolved arguments) and
/// <c>logging.jsonl</c>, each <c>checkpoint-N/</c> with a copy of args.json, which <c>--adapters CKPT</c> reads back
/// for the model, template and system. Defaults are ms-swift 3.x's where they differ from LLaMA-Factory's
/// (docs/swift.md).
/// </summary>
public static class SwiftRun
{
    public const string ArgsFile = "args.json";
    public const string LogFile = "logging.jsonl";

    /// <summary>The run's folder name under output_dir: ms-swift's <c>v{N}-{YYYYMMDD-HHMMSS}</c>, N one more than the highest vN there.</summary>
    public static string VersionFolder(string outputDir, DateTime now)
    {
        int version = -1;
        if (Directory.Exists(outputDir))
        {
            foreach (string dir in Directory.EnumerateDirectories(outputDir))
            {
                string name = Path.GetFileName(dir);
                int digits = 1;
                while (digits < name.Length && char.IsAsciiDigit(name[digits])) digits++;
                if (name.StartsWith('v') && digits > 1 && int.TryParse(name.AsSpan(1, digits - 1), NumberStyles.None, CultureInfo.InvariantCulture, out int v))
                    version = Math.Max(version, v);
            }
        }
        return Path.Combine(outputDir, $"v{version + 1}-{now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}");
    }

    /// <summary>What <c>swift sft</c> runs: the config for <c>TrainingWorkflow</c>, in a new version folder with its args.json written.</summary>
    public sealed record Sft(SftConfig Config, string RunDir, IReadOnlyList<string> Notes);

    /// <summary>
    /// Maps <c>swift sft</c>'s arguments onto a LLaMA-Factory sft config, creates the run's version folder under
    /// output_dir (default <c>output</c>) and writes args.json and the dataset_info.json that registers the dataset
    /// files there.
    /// </summary>
    /// <exception cref="ArgumentException">An argument value SharpTune cannot take; the message names the argument.</exception>
    public static Sft PrepareSft(SwiftArguments a, string workingDirectory, DateTime now) => PrepareTraining(a, workingDirectory, now, null);

    /// <summary>
    /// Maps <c>swift rlhf</c>'s arguments (swift sft's and the <see cref="SwiftRlhf"/> ones) onto a LLaMA-Factory
    /// dpo, kto, rm or ppo config, in the same run layout as swift sft; each <c>--dataset</c> file, in ms-swift's RLHF
    /// format, is converted (<see cref="SwiftPreferenceData"/>) into the run folder and registered there.
    /// </summary>
    /// <exception cref="ArgumentException">An argument value SharpTune cannot take; the message names the argument.</exception>
    /// <exception cref="InvalidDataException">A dataset record ms-swift would not read; the message names file, record and field.</exception>
    public static Sft PrepareRlhf(SwiftArguments a, string workingDirectory, DateTime now) =>
        PrepareTraining(a, workingDirectory, now, SwiftRlhf.For(a, workingDirectory));

    private static Sft PrepareTraining(SwiftArguments a, string workingDirectory, DateTime now, SwiftRlhfPlan? rlhf)
    {
        string command = rlhf is null ? "swift sft" : "swift rlhf";
        var notes = new List<string>(a.Notes);
        if (rlhf is not null) notes.AddRange(rlhf.Notes);
        var (model, modelType, template) = ModelAndTemplate(a, notes);

        string trainType = a.Choice("train_type", "lora", "full", "qlora") ?? "lora";
        int? quantBits = QuantBits(a);
        if (trainType == "qlora")
        {
            notes.Add("--sft_type qlora is not a value of any ms-swift release; taken as --train_type lora with --quant_method bnb --quant_bits 4");
            trainType = "lora";
            if (quantBits is not null and not 4)
                throw new ArgumentException($"--sft_type qlora trains on a 4-bit base, but --quant_bits {quantBits} was given");
            quantBits = 4;
        }
        if (quantBits is not null && trainType == "full")
            throw new ArgumentException("--quant_bits: a quantized base is trained with --train_type lora, not full");

        var datasets = a.List("dataset");
        if (datasets.Count == 0) throw new ArgumentException($"{command} needs --dataset FILE (a JSON or JSON Lines file; FILE#N samples N records)");
        int? sample = a.Int("train_dataset_sample", min: -1) is { } n and >= 0 ? n : null;
        string outputRoot = Path.GetFullPath(a.Text("output_dir") ?? "output", workingDirectory);
        string runDir = a.Bool("add_version") == false ? outputRoot : VersionFolder(outputRoot, now);

        var info = new JsonObject();
        var names = new List<string>();
        var converted = new List<(string FileName, JsonArray Records)>();
        foreach (string spec in datasets)
        {
            var (file, count) = DatasetSpec(spec, workingDirectory);
            if (count is not null)
            {
                if (sample is not null && sample != count)
                    throw new ArgumentException($"--dataset {spec}: #{count} differs from the {sample} records of another --dataset #N or --train_dataset_sample; SharpTune takes one number of records per dataset");
                sample = count;
            }
            string name = $"{names.Count}_{Path.GetFileNameWithoutExtension(file)}";
            if (rlhf is null)
            {
                var detected = DatasetInspector.Detect(DatasetRecordFile.Read(file));
                var layout = detected.Name switch { "alpaca" => DatasetLayout.Alpaca, "sharegpt" => DatasetLayout.Sharegpt, _ => DatasetLayout.OpenAi };
                info[name] = FormatConverter.Entry(layout, file, detected.Entry.System is not null, detected.Entry.History is not null,
                    detected.Entry.Tools is not null, query: layout == DatasetLayout.Alpaca);
            }
            else
            {
                // ms-swift's RLHF records, converted to LLaMA-Factory's alpaca layout in the run folder.
                var (records, entry) = SwiftPreferenceData.Convert(file, rlhf.Data, name + ".json");
                info[name] = entry;
                converted.Add((name + ".json", records));
            }
            names.Add(name);
        }
        if (sample is not null)
            notes.Add($"the first {sample} records of each dataset are trained on (LLaMA-Factory's max_samples); ms-swift samples them at random");

        var pairs = new List<(string Key, object Value)>
        {
            ("stage", rlhf?.Stage ?? "sft"), ("do_train", true), ("model_name_or_path", model), ("template", template),
            ("finetuning_type", trainType), ("dataset", string.Join(",", names)), ("dataset_dir", runDir),
            ("output_dir", runDir), ("overwrite_output_dir", true),
        };
        if (rlhf is not null) pairs.AddRange(rlhf.Pairs);
        if (a.Text("system") is { } system) pairs.Add(("default_system", system));
        if (sample is not null) pairs.Add(("max_samples", sample.Value));
        if (quantBits is not null) pairs.Add(("quantization_bit", quantBits.Value));
        AddQuantizationDetails(a, pairs);

        int maxLength = a.Int("max_length", min: 1) ?? 2048;
        if (!a.Has("max_length")) notes.Add("--max_length not given: 2048 tokens (ms-swift 3.x takes the model's context length)");
        pairs.Add(("cutoff_len", maxLength));

        // The validation share: ms-swift 3.x's split_dataset_ratio (default 0; 2.x's dataset_test_ratio 0.01), or a number of records.
        double ratio = a.Double("split_dataset_ratio", min: 0) ?? 0;
        int? valSample = a.Int("val_dataset_sample", min: -1);
        if (valSample is > 0) pairs.Add(("val_size", valSample.Value));
        else if (ratio > 0) pairs.Add(("val_size", ratio));
        bool evaluates = valSample is > 0 || ratio > 0;

        if (trainType == "lora")
        {
            pairs.Add(("lora_rank", a.Int("lora_rank", min: 1) ?? 8));
            pairs.Add(("lora_alpha", a.Int("lora_alpha", min: 1) ?? 32));
            pairs.Add(("lora_dropout", a.Double("lora_dropout", min: 0) ?? 0.05));
            pairs.Add(("lora_target", LoraTarget(a.List("target_modules"))));
        }
        else if (a.Has("lora_rank") || a.Has("lora_alpha") || a.Has("target_modules"))
            throw new ArgumentException("--lora_rank/--lora_alpha/--target_modules apply to --train_type lora, not full");

        int batch = a.Int("per_device_train_batch_size", min: 1) ?? 1;
        int saveSteps = a.Int("save_steps", min: 1) ?? 500;
        pairs.Add(("per_device_train_batch_size", batch));
        pairs.Add(("per_device_eval_batch_size", a.Int("per_device_eval_batch_size", min: 1) ?? 1));
        pairs.Add(("gradient_accumulation_steps", a.Int("gradient_accumulation_steps", min: 1) ?? Math.Max(1, (int)Math.Ceiling(16.0 / batch))));
        pairs.Add(("learning_rate", a.Double("learning_rate", min: 0) ?? (trainType == "full" ? 1e-5 : 1e-4)));
        pairs.Add(("num_train_epochs", a.Double("num_train_epochs", min: 0) ?? 3.0));
        if (a.Int("max_steps", min: 1) is { } maxSteps) pairs.Add(("max_steps", maxSteps));
        pairs.Add(("weight_decay", a.Double("weight_decay", min: 0) ?? 0.1));
        pairs.Add(("warmup_ratio", a.Double("warmup_ratio", min: 0) ?? 0.0));
        pairs.Add(("lr_scheduler_type", a.Choice("lr_scheduler_type", "cosine", "linear", "constant", "constant_with_warmup") ?? "cosine"));
        pairs.Add(("save_steps", saveSteps));
        pairs.Add(("logging_steps", a.Int("logging_steps", min: 1) ?? 5));
        if (a.Int("save_total_limit", min: 1) is { } limit) pairs.Add(("save_total_limit", limit));
        pairs.Add(("gradient_checkpointing", a.Bool("gradient_checkpointing") ?? true));
        pairs.Add(("seed", a.Int("seed") ?? 42));
        if (evaluates)
        {
            pairs.Add(("eval_strategy", "steps"));
            pairs.Add(("eval_steps", a.Int("eval_steps", min: 1) ?? saveSteps));
        }
        TorchDtype(a, notes);

        // The run folder is new (unless add_version false): a failure from here on removes it, leaving nothing half-made.
        bool created = !Directory.Exists(runDir);
        Directory.CreateDirectory(runDir);
        try
        {
            foreach (var (fileName, records) in converted)
                AtomicFile.WriteText(Path.Combine(runDir, fileName), records.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
            DatasetInfoFile.Write(Path.Combine(runDir, DatasetRegistry.FileName), info.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            var config = SftConfig.FromPairs(pairs.Select(p => $"{p.Key}={Yaml(p.Value)}").ToList(), ConfigUse.Train, $"{command} arguments");
            AtomicFile.WriteText(Path.Combine(runDir, ArgsFile), ArgsJson(a, model, modelType, template, trainType, quantBits, runDir, pairs, rlhf?.Args ?? []));
            return new Sft(config, runDir, notes);
        }
        catch when (created)
        {
            AtomicFile.DeleteDirectory(runDir);
            throw;
        }
    }

    /// <summary>What <c>swift infer</c> opens: the base, the adapters applied unmerged, template, system and the base's quantization.</summary>
    public sealed record Inference(string Model, IReadOnlyList<string> Adapters, string Template, string? System,
        QuantizationOptions? Quantization, IReadOnlyList<string> Notes);

    /// <summary>
    /// <c>swift infer</c>'s arguments: with <c>--adapters CKPT</c> the model, template, system and quantization come
    /// from the checkpoint's args.json unless given (ms-swift's load_args_from_ckpt).
    /// </summary>
    public static Inference PrepareInference(SwiftArguments a)
    {
        var notes = new List<string>(a.Notes);
        var adapters = Adapters(a).Select(adapter => adapter.Dir).ToList();
        RunArgs? run = adapters.Count > 0 ? ReadArgs(adapters[0]) : null;
        var (model, _, template) = ModelAndTemplate(a, notes, run);
        int? bits = QuantBits(a) ?? run?.QuantBits;
        if (a.Bool("merge_lora") == true)
            notes.Add("--merge_lora true: the adapters are applied unmerged, which gives the same replies as merged weights");
        return new Inference(model, adapters, template, a.Text("system") ?? run?.System,
            bits is null ? null : new QuantizationOptions(bits.Value), notes);
    }

    /// <summary>
    /// ms-swift's <c>--adapters</c> values: <c>NAME=DIR</c> (as <c>swift deploy</c> names a served adapter) or
    /// <c>DIR</c>, named by its folder.
    /// </summary>
    public static IReadOnlyList<(string Name, string Dir)> Adapters(SwiftArguments a) =>
        a.List("adapters").Select(spec =>
        {
            int eq = spec.IndexOf('=');
            if (eq == 0 || eq == spec.Length - 1) throw new ArgumentException($"--adapters {spec}: expected NAME=DIR or DIR");
            return eq > 0 ? (spec[..eq], spec[(eq + 1)..]) : (Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(spec))), spec);
        }).ToList();

    /// <summary>What <c>swift deploy</c> serves: the inference setup, and the server's address, key and base model id.</summary>
    public sealed record Deployment(Inference Inference, IReadOnlyList<(string Name, string Dir)> Adapters, string Host, int Port,
        string? ApiKey, string BaseName, IReadOnlyList<string> Notes);

    /// <summary>
    /// <c>swift deploy</c>'s arguments: the model as <c>swift infer</c> opens it, served as the base model (id
    /// <c>--served_model_name</c>, else the model folder's name) and one model id per adapter (its NAME, else its folder's
    /// name), on <c>--host</c> (127.0.0.1; ms-swift's default 0.0.0.0 is taken only when given) and <c>--port</c> (8000).
    /// </summary>
    public static Deployment PrepareDeploy(SwiftArguments a)
    {
        var inference = PrepareInference(a);
        var notes = new List<string>(inference.Notes);
        string host = a.Text("host") ?? "127.0.0.1";
        if (!a.Has("host")) notes.Add("--host not given: serving on 127.0.0.1 (ms-swift's default is 0.0.0.0; give --host 0.0.0.0 with --api_key to serve other machines)");
        int port = a.Int("port", min: 0) ?? 8000;
        if (port > 65535) throw new ArgumentException($"--port must be at most 65535, got {port}");
        string baseName = a.Text("served_model_name") ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(inference.Model));
        return new Deployment(inference, Adapters(a), host, port, a.Text("api_key"), baseName, notes);
    }

    /// <summary><c>swift infer</c>'s generation arguments over the model's defaults: temperature 0 is greedy, as in ms-swift.</summary>
    public static GenerationOptions Generation(SwiftArguments a, GenerationOptions defaults)
    {
        var options = defaults;
        if (a.Int("max_new_tokens", min: 1) is { } max) options = options with { MaxNewTokens = max };
        if (a.Double("temperature", min: 0) is { } temperature)
            options = temperature == 0 ? options with { DoSample = false } : options with { DoSample = true, Temperature = (float)temperature };
        if (a.Int("top_k", min: 0) is { } topK) options = options with { TopK = topK };
        if (a.Double("top_p", min: 0) is { } topP) options = options with { TopP = (float)topP };
        if (a.Double("repetition_penalty", min: 0) is { } penalty) options = options with { RepetitionPenalty = (float)penalty };
        return options;
    }

    /// <summary>
    /// <c>swift export --adapters CKPT --merge_lora true</c> as an export config: the base and template from the
    /// checkpoint's args.json, the merged folder at <c>--output_dir</c> or, as ms-swift names it, <c>CKPT-merged</c>
    /// beside the checkpoint, which must not exist yet.
    /// </summary>
    public static (SftConfig Config, IReadOnlyList<string> Notes) PrepareExport(SwiftArguments a, string workingDirectory)
    {
        if (a.Bool("merge_lora") != true)
            throw new ArgumentException("swift export: SharpTune's swift export merges LoRA adapters: give --adapters CKPT --merge_lora true");
        var inference = PrepareInference(a);
        if (inference.Adapters.Count == 0) throw new ArgumentException("swift export --merge_lora true needs --adapters CKPT");
        string checkpoint = Path.GetFullPath(inference.Adapters[0], workingDirectory).TrimEnd('/', '\\');
        string exportDir = a.Text("output_dir") is { } o ? Path.GetFullPath(o, workingDirectory) : checkpoint + "-merged";
        if (Path.Exists(exportDir))
            throw new ArgumentException($"--output_dir {exportDir} already exists (ms-swift refuses it too); remove it or give another --output_dir");
        var pairs = new List<string>
        {
            $"model_name_or_path={Yaml(inference.Model)}",
            $"adapter_name_or_path={Yaml(string.Join(",", inference.Adapters.Select(d => Path.GetFullPath(d, workingDirectory))))}",
            $"template={Yaml(inference.Template)}",
            $"export_dir={Yaml(exportDir)}",
        };
        if (inference.Quantization is { } q) pairs.Add($"quantization_bit={q.Bits}");
        return (SftConfig.FromPairs(pairs, ConfigUse.Export, "swift export arguments"), inference.Notes);
    }

    /// <summary>What a checkpoint's args.json says the run was: its model, template (SharpTune's name) and system, and the base's quantization.</summary>
    public sealed record RunArgs(string Model, string Template, string? System, int? QuantBits);

    /// <summary>
    /// ms-swift's <c>--adapters CKPT</c>: the args.json in the checkpoint folder (ms-swift copies it into every
    /// checkpoint), else in the run folder above it.
    /// </summary>
    /// <exception cref="FileNotFoundException">Neither holds an args.json.</exception>
    /// <exception cref="InvalidDataException">args.json is not a JSON object with a "model" string; the message names the file and field.</exception>
    public static RunArgs ReadArgs(string checkpointDir)
    {
        string path = Path.Combine(checkpointDir, ArgsFile);
        if (!File.Exists(path) && Path.GetDirectoryName(Path.GetFullPath(checkpointDir).TrimEnd('/', '\\')) is { } parent && File.Exists(Path.Combine(parent, ArgsFile)))
            path = Path.Combine(parent, ArgsFile);
        if (!File.Exists(path))
            throw new FileNotFoundException($"--adapters {checkpointDir}: no {ArgsFile} in it or in its run folder, so the base model is unknown; give it with --model", path);
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
        string? Field(string key)
        {
            var node = root[key];
            if (node is null) return null;
            return node.GetValueKind() == JsonValueKind.String ? node.GetValue<string>() : throw new InvalidDataException($"{path}: \"{key}\" must be a string");
        }
        string model = Field("model") ?? throw new InvalidDataException($"{path}: \"model\" is missing");
        int? bits = root["quant_bits"] is { } q && q.GetValueKind() == JsonValueKind.Number ? q.GetValue<int>() : null;
        return new RunArgs(model, Field("template") ?? "auto", Field("system"), bits);
    }

    /// <summary>
    /// Writes ms-swift's files beside a run's own: a copy of args.json into each checkpoint it saves, and one
    /// logging.jsonl line per logged step (the logged values, then global_step/max_steps, percentage, elapsed_time,
    /// remaining_time and train_speed(iter/s) as ms-swift's callback adds them).
    /// </summary>
    public sealed class LayoutObserver(string runDir) : IRunObserver
    {
        public void On(RunEvent e)
        {
            switch (e)
            {
                case CheckpointSaved saved:
                    AtomicFile.Copy(Path.Combine(runDir, ArgsFile), Path.Combine(saved.Path, ArgsFile));
                    break;
                case HistoryLogged logged:
                    Append(logged);
                    break;
            }
        }

        private void Append(HistoryLogged logged)
        {
            double elapsed = logged.ThisProcess.Elapsed.TotalSeconds;
            double done = logged.MaxSteps > 0 ? logged.GlobalStep / (double)logged.MaxSteps : 0;
            var line = logged.Entry.Values.Where(kv => kv.Key != "step").ToList();
            line.Add(new("global_step/max_steps", $"{logged.GlobalStep}/{logged.MaxSteps}"));
            line.Add(new("percentage", (done * 100).ToString("F2", CultureInfo.InvariantCulture) + "%"));
            line.Add(new("elapsed_time", FormatTime(elapsed)));
            if (done > 0) line.Add(new("remaining_time", FormatTime(elapsed / done - elapsed)));
            line.Add(new("train_speed(iter/s)", PythonJson.Round(elapsed > 0 ? logged.ThisProcess.Steps / elapsed : 0, 6)));
            using var stream = new FileStream(Path.Combine(runDir, LogFile), FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0);
            stream.Write(System.Text.Encoding.UTF8.GetBytes(PythonJson.Dumps(line) + "\n"));
        }
    }

    /// <summary>ms-swift's format_time: "1d 2h 3m 4s", leading zero units left out.</summary>
    public static string FormatTime(double seconds)
    {
        long s = (long)seconds;
        long days = s / 86400, hours = s % 86400 / 3600, minutes = s % 3600 / 60, rest = s % 60;
        return days > 0 ? $"{days}d {hours}h {minutes}m {rest}s"
            : hours > 0 ? $"{hours}h {minutes}m {rest}s"
            : minutes > 0 ? $"{minutes}m {rest}s"
            : $"{rest}s";
    }

    /// <summary>
    /// The model (path or hub id), the model_type as given, and SharpTune's template name: each from the arguments,
    /// else from the model_type table, else from the checkpoint's args.json (<paramref name="run"/>), else the model
    /// folder's own template (auto).
    /// </summary>
    private static (string Model, string? ModelType, string Template) ModelAndTemplate(SwiftArguments a, List<string> notes, RunArgs? run = null)
    {
        string? modelType = a.Text("model_type");
        SwiftModel? known = modelType is null ? null : SwiftModels.Table.FirstOrDefault(m => m.ModelType == modelType);
        string model = a.Text("model") ?? run?.Model ?? (modelType is null
            ? throw new ArgumentException("give the model with --model (a folder or hub id) or --model_type (docs/swift.md's table)")
            : SwiftModels.Get(modelType).ModelId);
        if (modelType is not null && known is null)
            notes.Add($"--model_type {modelType} is not in SharpTune's table; the model is --model {model} and the template comes from --template or its tokenizer_config.json");
        string template = a.Text("template") is { } t ? SwiftModels.Template(t) : known?.Template ?? run?.Template ?? "auto";
        return (model, modelType, template);
    }

    /// <summary>4 or 8 from --quant_method bnb --quant_bits (2.x: --quantization_bit; 0 = none).</summary>
    private static int? QuantBits(SwiftArguments a)
    {
        int? bits = a.Int("quant_bits");
        if (bits == 0) return null;
        string? method = a.Text("quant_method");
        if (bits is null && method is null) return null;
        if (method is null) throw new ArgumentException("--quant_bits needs --quant_method bnb");
        if (method != "bnb") throw new ArgumentException($"--quant_method {method} is not supported (SharpTune quantizes as bitsandbytes does: --quant_method bnb)");
        return bits is 4 or 8 ? bits : throw new ArgumentException($"--quant_bits must be 4 or 8 with --quant_method bnb, got {a.Text("quant_bits") ?? "nothing"}");
    }

    private static void AddQuantizationDetails(SwiftArguments a, List<(string Key, object Value)> pairs)
    {
        if (a.Choice("bnb_4bit_quant_type", "nf4", "fp4") is { } type) pairs.Add(("quantization_type", type));
        if (a.Bool("bnb_4bit_use_double_quant") is { } dq) pairs.Add(("double_quantization", dq));
    }

    /// <summary>
    /// The modules LoRA wraps: <c>all-linear</c> (3.x's default) or 2.x's <c>ALL</c> is every linear layer
    /// (LLaMA-Factory's <c>all</c>); otherwise the module names given.
    /// </summary>
    private static string LoraTarget(IReadOnlyList<string> modules)
    {
        if (modules.Count == 0 || modules is ["all-linear"] || modules is ["ALL"]) return "all";
        foreach (string m in modules)
        {
            if (m is "DEFAULT" or "AUTO" or "EMBEDDING" or "all-embedding" or "all-norm")
                throw new ArgumentException($"--target_modules {m} is not supported (give all-linear, ALL or module names such as q_proj v_proj)");
        }
        return string.Join(",", modules);
    }

    private static void TorchDtype(SwiftArguments a, List<string> notes)
    {
        string? dtype = a.Text("torch_dtype");
        if (dtype is null) return;
        if (dtype is not ("bfloat16" or "float16" or "float32" or "bf16" or "fp16" or "fp32" or "AUTO"))
            throw new ArgumentException($"--torch_dtype {dtype} is not one of bfloat16, float16, float32");
        notes.Add($"--torch_dtype {dtype}: SharpTune keeps the weights in the checkpoint's dtype and computes in float32 (LoRA weights are float32)");
    }

    /// <summary>ms-swift's <c>--dataset PATH#N</c>: the file (resolved against the working directory) and the number of records to sample.</summary>
    private static (string File, int? Count) DatasetSpec(string spec, string workingDirectory)
    {
        int hash = spec.LastIndexOf('#');
        string path = hash > 0 ? spec[..hash] : spec;
        int? count = null;
        if (hash > 0)
        {
            count = int.TryParse(spec.AsSpan(hash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0
                ? n
                : throw new ArgumentException($"--dataset {spec}: the number after # must be a positive integer");
        }
        string file = Path.GetFullPath(path, workingDirectory);
        if (!File.Exists(file))
            throw new ArgumentException($"--dataset {spec}: '{file}' does not exist (SharpTune's swift front end reads local JSON or JSON Lines files; hub dataset ids are not looked up)");
        return (file, count);
    }

    private static string Yaml(object value) => value switch
    {
        bool b => b ? "true" : "false",
        string s => JsonSerializer.Serialize(s),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => throw new ArgumentException($"no YAML form for {value}"),
    };

    /// <summary>ms-swift's args.json: the run's arguments under ms-swift 3.x names, defaults resolved.</summary>
    private static string ArgsJson(SwiftArguments a, string model, string? modelType, string template, string trainType, int? quantBits,
        string runDir, List<(string Key, object Value)> pairs, IReadOnlyList<KeyValuePair<string, object?>> rlhfArgs)
    {
        object? Pair(string key) => pairs.FirstOrDefault(p => p.Key == key).Value;
        var args = new List<KeyValuePair<string, object?>>
        {
            new("model", model),
            new("model_type", modelType),
            new("template", template),
            new("system", a.Text("system")),
            new("torch_dtype", a.Text("torch_dtype")),
            new("train_type", trainType),
        };
        args.AddRange(rlhfArgs);
        args.AddRange(new List<KeyValuePair<string, object?>>
        {
            new("dataset", a.List("dataset").ToList<object?>()),
            new("max_length", Pair("cutoff_len")),
            new("quant_method", quantBits is null ? null : "bnb"),
            new("quant_bits", quantBits),
            new("lora_rank", Pair("lora_rank")),
            new("lora_alpha", Pair("lora_alpha")),
            new("lora_dropout", Pair("lora_dropout")),
            new("target_modules", trainType == "lora" ? (a.List("target_modules") is { Count: > 0 } m ? m.ToList<object?>() : ["all-linear"]) : null),
            new("learning_rate", Pair("learning_rate")),
            new("num_train_epochs", Pair("num_train_epochs")),
            new("max_steps", Pair("max_steps")),
            new("per_device_train_batch_size", Pair("per_device_train_batch_size")),
            new("gradient_accumulation_steps", Pair("gradient_accumulation_steps")),
            new("save_steps", Pair("save_steps")),
            new("logging_steps", Pair("logging_steps")),
            new("seed", Pair("seed")),
            new("output_dir", runDir),
        });
        return PythonJson.Dumps(args, indent: 2) + "\n";
    }
}
