using System.CommandLine;
using System.Diagnostics;
using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.Evaluation.Prediction;
using SharpTune.Export;
using SharpTune.Hparams;
using SharpTune.Inference;
using SharpTune.IO;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training;
using SharpTune.Training.Memory;
using SharpTune.Training.Methods;
using SharpTune.Training.Reporting;
using SharpTune.Training.Trainer;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune train CONFIG.yaml [key=value ...]`: supervised fine-tuning (or, with stage pt, continued pretraining)
/// from a LLaMA-Factory YAML config — data → template → tokens with masked prompts (pt: plain text, every token
/// trained) → the method's trainable model → the trainer → output_dir.
/// </summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "LLaMA-Factory style YAML config (see docs/config.md)" };
        var overrides = new Argument<string[]>("overrides") { Description = "key=value pairs that replace the file's values", Arity = ArgumentArity.ZeroOrMore };
        var lenient = new Option<bool>("--lenient")
        {
            Description = "Skip malformed dataset records and report them, instead of stopping at the first one (skip_invalid_records: true)",
        };
        var skipMemoryCheck = new Option<bool>("--skip-memory-check")
        {
            Description = "Train even when the memory estimate (sharptune estimate) says the run will not fit",
        };
        var command = new Command("train", "Fine-tune a model (lora, full or freeze), evaluate it or generate predictions, as a LLaMA-Factory config describes")
        {
            config, overrides, lenient, skipMemoryCheck,
        };
        command.SetAction(r => CliAction.Run(() => Train(r.GetValue(config)!, r.GetValue(overrides) ?? [], r.GetValue(lenient), r.GetValue(skipMemoryCheck))));
        return command;
    }

    private static int Train(string configPath, string[] overrides, bool lenient, bool skipMemoryCheck)
    {
        var cfg = SftConfig.Load(configPath, overrides, ConfigUse.Train);
        if (lenient) cfg.Data.SkipInvalidRecords = true;
        foreach (string note in cfg.Notes) Log($"note: {note}");
        long? estimatedPeak = cfg.Training.DoTrain ? PreflightMemory(cfg, skipMemoryCheck) : null;

        string modelDir = cfg.Model.ModelNameOrPath;
        ModelFolder.ValidateTokenizer(modelDir);
        var tokenizer = Tokenizer.FromDirectory(modelDir);
        var template = ChatTemplates.ForModel(cfg.Data.Template ?? "auto", modelDir, tokenizer);
        if (cfg.Training.DoPredict) return Predict(cfg, tokenizer, template);
        var data = cfg.Finetuning.Stage == "pt"
            ? PretrainDatasets.Load(cfg.Data, tokenizer, template, modelDir, cfg.Training.Seed)
            : SupervisedDatasets.Load(cfg.Data, tokenizer, template, cfg.Training.Seed);
        foreach (string line in data.Report.ToString().Split('\n')) Log(line);
        if (cfg.Training.DoTrain && data.Train.Count == 0) throw new InvalidDataException("the training set is empty: no dataset record produced an example");

        int padId = TokenizerConfig.PadTokenId(tokenizer, modelDir);
        var started = Stopwatch.StartNew();
        using var model = TrainableModels.Create(modelDir, cfg.Finetuning, cfg.Training.GradientCheckpointing,
            new SeededRandom((ulong)cfg.Training.Seed), cfg.Model.AdapterNameOrPath, cfg.Model.Quantization, cfg.Training.Bf16, cfg.Model.HubId);
        if (cfg.Model.Quantization is { } quantization) Log($"base projections quantized on load: {quantization}");
        if (cfg.Training.Bf16)
            Log(Bf16ComputeMatrix.AvailableKernel is null
                ? $"note: bf16: {Bf16ComputeMatrix.Unavailable}; computing in fp32"
                : "bf16: frozen bf16 weights are multiplied on oneDNN's bf16 GEMM (activations rounded to bf16, fp32 accumulation); float32 weights and everything trained stay fp32");
        Log($"{cfg.Finetuning.FinetuningType.ToString().ToLowerInvariant()}: {TrainableModels.Summary(model)}");

        string outputDir = cfg.Training.OutputDir;
        if (!cfg.Training.DoTrain)
        {
            Log($"evaluating {data.Eval.Count} examples");
            string evalStatus = $"[eval 0/{data.Eval.Count} examples]";
            IReadOnlyList<KeyValuePair<string, object?>> metrics;
            using (new ProgressHeartbeat(Console.Error, ProgressHeartbeat.ConfiguredInterval(), () => Volatile.Read(ref evalStatus)))
            {
                var evaluator = new LossEvaluator(model, data.Eval, cfg.Training.PerDeviceEvalBatchSize, padId)
                {
                    ExamplesDone = done => Volatile.Write(ref evalStatus, $"[eval {done}/{data.Eval.Count} examples]"),
                };
                metrics = evaluator.EvaluateAndSave(outputDir);
            }
            PrintMetrics(metrics);
            Log($"saved eval_results.json to {outputDir}");
            return 0;
        }
        var trainer = new SftTrainer(model, cfg.Training, data.Train, data.Eval.Count > 0 ? data.Eval : null, padId, TrainingProgress.ForStandardError());
        PrepareOutputDir(cfg.Training);

        Log($"training {trainer.Plan.MaxSteps} steps on {data.Train.Count} examples; Ctrl+C saves a checkpoint and stops");
        using var interrupt = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (interrupt.IsCancellationRequested) return;
            e.Cancel = true;
            interrupt.Cancel();
            Console.Error.WriteLine();
            Log("interrupted: finishing this step and saving a checkpoint (press Ctrl+C again to abort at once)");
        };
        Console.CancelKeyPress += onCancel;
        TrainResult result;
        try
        {
            result = trainer.Train(interrupt.Token);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }

        if (result.Interrupted)
        {
            Log($"stopped at step {result.GlobalStep}/{result.MaxSteps}; resume with: {ResumeCommand(configPath, overrides, lenient, skipMemoryCheck, result.CheckpointPath!)}");
            return 130;
        }

        // LLaMA-Factory saves the tokenizer next to the trained weights so the output folder is self-describing.
        foreach (string file in ModelExporter.TokenizerFiles)
        {
            string source = Path.Combine(modelDir, file);
            if (File.Exists(source)) AtomicFile.Copy(source, Path.Combine(outputDir, file));
        }
        if (cfg.Finetuning.PlotLoss)
        {
            PlotCurve(outputDir, result.LossCurve.Training, "loss");
            PlotCurve(outputDir, result.LossCurve.Evaluation, "eval_loss");
        }
        foreach (var (key, value) in result.Metrics.OrderBy(m => m.Key, StringComparer.Ordinal))
            Console.WriteLine($"{key} = {value:G6}");
        Log($"saved to {outputDir} in {started.Elapsed:hh\\:mm\\:ss}");
        if (SystemMemory.PeakResidentBytes() is { } peak)
            Log($"peak resident memory: {MemoryEstimator.FormatBytes(peak)} (estimated {MemoryEstimator.FormatBytes(estimatedPeak!.Value)})");
        return 0;
    }

    /// <summary>
    /// The memory pre-flight, before the tokenizer, the data or any weight is loaded: a run whose estimated peak
    /// exceeds the available memory stops here with the estimate and the options that would fit, rather than with an
    /// OutOfMemoryException or the kernel's OOM killer hours later. Returns the estimated peak.
    /// </summary>
    private static long PreflightMemory(SftConfig cfg, bool skip)
    {
        var check = MemoryCheck.Run(cfg, SystemMemory.Read());
        if (check.Fits) return check.Estimate.TotalBytes;
        if (skip)
        {
            Log($"note: --skip-memory-check: training although the estimated peak {MemoryEstimator.FormatBytes(check.Estimate.TotalBytes)} exceeds the {MemoryEstimator.FormatBytes(check.Available!.Bytes)} available");
            return check.Estimate.TotalBytes;
        }
        Console.Error.Write(check.Format());
        throw new InsufficientMemoryException(
            $"the estimated peak memory {MemoryEstimator.FormatBytes(check.Estimate.TotalBytes)} exceeds the {MemoryEstimator.FormatBytes(check.Available!.Bytes)} available; apply one of the options above, or pass --skip-memory-check to train anyway");
    }

    /// <summary>
    /// do_predict with predict_with_generate: the base model with the config's adapters applied unmerged generates for
    /// every eval_dataset prompt (batched, left-padded) with the config's generation keys; see <see cref="PredictionRun"/>.
    /// </summary>
    private static int Predict(SftConfig cfg, Tokenizer tokenizer, ChatTemplate template)
    {
        string modelDir = cfg.Model.ModelNameOrPath;
        var (examples, report) = SupervisedDatasets.LoadForGeneration(cfg.Data, tokenizer, template, cfg.Training.Seed);
        foreach (string line in report.ToString().Split('\n')) Log(line);
        using var model = DecoderModel.Load(modelDir, adapterDirectories: cfg.Model.AdapterNameOrPath, quantization: cfg.Model.Quantization);
        var g = cfg.Generating;
        var options = new GenerationOptions
        {
            Seed = cfg.Training.Seed,
            StopTokenIds = PredictionRun.StopTokenIds(tokenizer, template, modelDir),
        }.With(g);
        var settings = new PredictionSettings(options, cfg.Training.PerDeviceEvalBatchSize, g.SkipSpecialTokens, TokenizerConfig.PadTokenId(tokenizer, modelDir));
        Log($"predicting {examples.Count} examples in batches of {settings.BatchSize} ({(g.DoSample ? $"sampling: temperature {g.Temperature}, top_p {g.TopP}, top_k {g.TopK}" : "greedy")}, max_new_tokens {g.MaxNewTokens})");
        var outcome = PredictionRun.Execute(model, tokenizer, examples, settings, cfg.Training.OutputDir, PredictionProgress.ForStandardError());
        PrintMetrics(outcome.Metrics);
        Log($"saved {PredictionRun.PredictionsFileName} and predict_results.json to {cfg.Training.OutputDir}");
        return 0;
    }

    private static void PrintMetrics(IEnumerable<KeyValuePair<string, object?>> metrics)
    {
        foreach (var (key, value) in metrics.OrderBy(m => m.Key, StringComparer.Ordinal))
            Console.WriteLine(value is double d ? $"{key} = {d.ToString("G6", System.Globalization.CultureInfo.InvariantCulture)}" : $"{key} = {value}");
    }

    /// <summary>
    /// The command line that continues an interrupted run: the same config, overrides, --lenient and --skip-memory-check
    /// (without them the resumed run would train on other data, into another output_dir, or be refused), with
    /// resume_from_checkpoint set last.
    /// </summary>
    private static string ResumeCommand(string configPath, IReadOnlyList<string> overrides, bool lenient, bool skipMemoryCheck, string checkpoint)
    {
        var args = new List<string> { "sharptune", "train", configPath };
        args.AddRange(overrides.Where(o => o.Split('=', 2)[0].Trim() != "resume_from_checkpoint"));
        args.Add($"resume_from_checkpoint={checkpoint}");
        if (lenient) args.Add("--lenient");
        if (skipMemoryCheck) args.Add("--skip-memory-check");
        return string.Join(" ", args.Select(ShellQuote));
    }

    /// <summary>A POSIX shell word: as is when it holds only safe characters, else single-quoted.</summary>
    private static string ShellQuote(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "_-./=:,+@%".Contains(c))
            ? word
            : "'" + word.Replace("'", "'\\''") + "'";

    /// <summary>
    /// LLaMA-Factory's rule for an output_dir that is not empty: without an explicit resume_from_checkpoint it resumes
    /// from the latest complete checkpoint-N there, and refuses a folder that holds model weights but no checkpoint
    /// (a finished run's output). Anything else (the log of a run killed before its first checkpoint, other files)
    /// is trained into afresh. overwrite_output_dir trains afresh whatever is there; the trainer removes the earlier
    /// checkpoints only once this run has saved its own, so an interrupted overwrite leaves them to resume from.
    /// </summary>
    private static void PrepareOutputDir(TrainingArguments args)
    {
        string dir = args.OutputDir;
        if (!Directory.Exists(dir) || !Directory.EnumerateFileSystemEntries(dir).Any()) return;
        if (args.ResumeFromLatestCheckpoint || args.ResumeFromCheckpoint is not null) return;
        if (args.OverwriteOutputDir)
        {
            Log(CheckpointFolders.List(dir).Count == 0
                ? $"overwrite_output_dir: training afresh in {dir}"
                : $"overwrite_output_dir: training afresh in {dir}; its checkpoints are removed once this run has saved its first one");
            return;
        }
        if (CheckpointFolders.Latest(dir) is string latest)
        {
            args.ResumeFromCheckpoint = latest;
            Log($"output_dir holds checkpoints: resuming from {latest} (set overwrite_output_dir: true to start afresh)");
            return;
        }
        if (WeightFiles.FirstOrDefault(f => File.Exists(Path.Combine(dir, f))) is string weights)
            throw new InvalidOperationException($"output_dir {dir} already holds model weights ({weights}) and no checkpoint to resume from; set overwrite_output_dir: true to train afresh into it, or choose another output_dir");
        if (File.Exists(Path.Combine(dir, TrainerLogFile.FileName)))
            Log($"note: output_dir holds the {TrainerLogFile.FileName} of a run that saved no checkpoint: starting afresh");
    }

    /// <summary>LLaMA-Factory's CHECKPOINT_NAMES: the files that make an output_dir a trained model's.</summary>
    private static readonly string[] WeightFiles =
        ["adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];

    private static void PlotCurve(string outputDir, IReadOnlyList<LossPoint> points, string key)
    {
        var written = LossPlot.Write(outputDir, points.Select(p => (p.Step, p.Loss)).ToList(), key);
        if (written.Count == 0) Log($"no {key} to plot");
        foreach (string path in written) Log($"figure saved at: {path}");
    }

    private static void Log(string message) => Console.Error.WriteLine($"[sharptune] {message}");
}
