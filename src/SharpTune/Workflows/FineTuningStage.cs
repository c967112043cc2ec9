using System.Diagnostics;
using SharpTune.Data;
using SharpTune.Distributed;
using SharpTune.Engine;
using SharpTune.Evaluation.Prediction;
using SharpTune.Export;
using SharpTune.Hparams;
using SharpTune.Inference;
using SharpTune.IO;
using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Reporting;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training;
using SharpTune.FineTuning.Memory;
using SharpTune.FineTuning;
using SharpTune.Training.Model;
using SharpTune.Training.Optim;
using SharpTune.Training.Trainer;

namespace SharpTune.Workflows;

/// <summary>
/// The stages that train a causal language model on <see cref="SupervisedExample"/>s — sft (prompt labels masked) and
/// pt (plain text, every token trained); they differ only in how records become examples. One run is LLaMA-Factory's
/// run_sft/run_pt: the memory pre-flight, tokenizer and template, then do_predict (generation over the eval set),
/// do_train (the trainer, then the tokenizer files, results and loss plots in output_dir) or do_eval alone.
/// </summary>
public sealed class FineTuningStage : ITrainingStage
{
    public static FineTuningStage Supervised { get; } = new((cfg, tokenizer, template) =>
        SupervisedDatasets.Load(cfg.Data, tokenizer, template, cfg.Training.Seed));

    public static FineTuningStage Pretraining { get; } = new((cfg, tokenizer, template) =>
        PretrainDatasets.Load(cfg.Data, tokenizer, template, cfg.Model.ModelNameOrPath, cfg.Training.Seed));

    private readonly Func<SftConfig, Tokenizer, ChatTemplate, PreparedData> _loadData;

    private FineTuningStage(Func<SftConfig, Tokenizer, ChatTemplate, PreparedData> loadData) => _loadData = loadData;

    public WorkflowResult Run(TrainingRequest request, CancellationToken cancellation, IRunObserver observer)
    {
        var (cfg, tokenizer, template, estimatedPeak) = Begin(request, ref observer);
        void Note(string text) => observer.On(new RunNote(text));
        string modelDir = cfg.Model.ModelNameOrPath;
        if (cfg.Training.DoPredict) return Predict(cfg, tokenizer, template, observer);
        var data = _loadData(cfg, tokenizer, template);
        foreach (string line in data.Report.ToString().Split('\n')) Note(line);
        if (cfg.Training.DoTrain && data.Train.Count == 0) throw new InvalidDataException("the training set is empty: no dataset record produced an example");

        int padId = TokenizerConfig.PadTokenId(tokenizer, modelDir);
        var started = Stopwatch.StartNew();
        using var model = CreateModel(cfg, Note);

        if (!cfg.Training.DoTrain) return Evaluate(cfg, new CrossEntropyStep<SupervisedExample>(model, new SupervisedBatches(padId)), data.Eval, observer);

        var trainer = new SftTrainer(model, cfg.Training, data.Train, data.Eval.Count > 0 ? data.Eval : null, padId, observer);
        return Train(cfg, model, trainer, data.Train.Count, started, estimatedPeak, cancellation, observer, []);
    }

    /// <summary>The trainable model of the config's method, with the notes on how its weights are held and what trains.</summary>
    /// <summary>
    /// What every training stage does first: the result files (metrics, trainer_state.json, predictions, loss plots)
    /// join <paramref name="observer"/>, the config's notes are reported, the memory pre-flight runs before anything is
    /// loaded (when training), then the tokenizer and the chat template are read.
    /// </summary>
    internal static (SftConfig Config, Tokenizer Tokenizer, ChatTemplate Template, long? EstimatedPeak) Begin(TrainingRequest request, ref IRunObserver observer)
    {
        var cfg = request.Config;
        // In a data-parallel run rank 0 writes the result files for all.
        if (ProcessGroup.WritesOutputs) observer = new RunObservers(new ResultFiles(cfg.Training.OutputDir, observer), observer);
        foreach (string note in cfg.Notes) observer.On(new RunNote($"note: {note}"));
        long? estimatedPeak = cfg.Training.DoTrain ? PreflightMemory(cfg, request.SkipMemoryCheck, observer) : null;
        string modelDir = cfg.Model.ModelNameOrPath;
        ModelFolder.ValidateTokenizer(modelDir);
        var tokenizer = Tokenizer.FromDirectory(modelDir);
        return (cfg, tokenizer, ChatTemplates.ForModel(cfg.Data.Template ?? "auto", modelDir, tokenizer), estimatedPeak);
    }

    internal static ITrainableModel CreateModel(SftConfig cfg, Action<string> note)
    {
        var model = TrainableModels.Create(cfg.Model.ModelNameOrPath, cfg.Finetuning, cfg.Training.GradientCheckpointing,
            new SeededRandom((ulong)cfg.Training.Seed), cfg.Model.AdapterNameOrPath, cfg.Model.Quantization, cfg.Training.Bf16, cfg.Model.HubId);
        if (cfg.Model.Quantization is { } quantization) note($"base projections quantized on load: {quantization}");
        if (cfg.Training.Bf16)
            note(Bf16ComputeMatrix.AvailableKernel is null
                ? $"note: bf16: {Bf16ComputeMatrix.Unavailable}; computing in fp32"
                : "bf16: frozen bf16 weights are multiplied on oneDNN's bf16 GEMM, quantized projections dequantized to bf16 for it (activations rounded to bf16, fp32 accumulation); unquantized float32 weights and everything trained stay fp32");
        note($"{cfg.Finetuning.MethodName}: {TrainableModels.Summary(model)}");
        if (cfg.Finetuning.LoraplusLrRatio is { } loraplusRatio)
        {
            LoraPlus.AssignGroups(model.TrainableParameters, loraplusRatio, cfg.Finetuning.LoraplusLrEmbedding, cfg.Training.LearningRate);
            note($"LoRA+: lora_B and 1-D parameters at learning_rate × {loraplusRatio}");
        }
        return model;
    }

    /// <summary>
    /// do_train with a trainer of any stage: output_dir's resume rule, the training, then what LLaMA-Factory leaves
    /// beside the trained weights — the tokenizer files, PiSSA's converted adapter (of <paramref name="model"/>), the loss plots (loss, eval_loss and the stage's
    /// <paramref name="plottedMetrics"/>) — and the final notes.
    /// </summary>
    internal static WorkflowResult Train<TExample>(SftConfig cfg, ITrainableModel model, Trainer<TExample> trainer, int trainExamples, Stopwatch started, long? estimatedPeak,
        CancellationToken cancellation, IRunObserver observer, IReadOnlyList<string> plottedMetrics) =>
        Train(cfg, model, trainer.Plan, trainer.Train, trainExamples, started, estimatedPeak, cancellation, observer, plottedMetrics);

    /// <summary>The same with a training loop of its own (stage ppo's), given as its <paramref name="plan"/> and <paramref name="train"/> call.</summary>
    internal static WorkflowResult Train(SftConfig cfg, ITrainableModel model, TrainingPlan plan, Func<CancellationToken, TrainResult> train, int trainExamples,
        Stopwatch started, long? estimatedPeak, CancellationToken cancellation, IRunObserver observer, IReadOnlyList<string> plottedMetrics)
    {
        void Note(string text) => observer.On(new RunNote(text));
        string modelDir = cfg.Model.ModelNameOrPath, outputDir = cfg.Training.OutputDir;
        ResumePolicy.ApplyToOutputDir(cfg.Training, Note);
        observer.On(new RunStarted(new RunPlan("train", cfg.Finetuning.Stage, trainExamples, plan)));
        var result = train(cancellation);
        if (result.Interrupted || !ProcessGroup.WritesOutputs)
        {
            observer.On(new RunFinished("train", [], Interrupted: result.Interrupted));
            return new WorkflowResult("train", [], result);
        }

        // LLaMA-Factory saves the tokenizer next to the trained weights so the output folder is self-describing.
        foreach (string file in ModelExporter.TokenizerFiles)
        {
            string source = Path.Combine(modelDir, file);
            if (File.Exists(source)) AtomicFile.Copy(source, Path.Combine(outputDir, file));
        }
        if (cfg.Finetuning.PissaConvert)
        {
            // LLaMA-Factory's PissaConvertCallback: the trained adapter also as a plain LoRA for the original base.
            if (model is LoraFineTuning { InitLoraWeights: not null } mutated)
            {
                string converted = Path.Combine(outputDir, "pissa_converted");
                mutated.SaveConverted(converted);
                Note($"the adapter converted to a plain LoRA on the original base (rank {2 * mutated.Rank}) is saved to {converted}");
            }
            else
                Note("note: pissa_convert has no effect: the adapter was not initialised from the base weight (pissa_init or init_lora_weights: olora)");
        }
        if (cfg.Finetuning.PlotLoss)
        {
            observer.On(new LossCurveReported("loss", Points(result.LossCurve.Training)));
            observer.On(new LossCurveReported("eval_loss", Points(result.LossCurve.Evaluation)));
            foreach (string key in plottedMetrics)
                observer.On(new LossCurveReported(key, result.LogHistory.Where(e => e.TryGetDouble(key) is not null)
                    .Select(e => (e.Step, e.TryGetDouble(key)!.Value)).ToList()));
        }
        var metrics = result.Metrics.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => new KeyValuePair<string, object?>(m.Key, m.Value)).ToList();
        Note($"saved to {outputDir} in {started.Elapsed:hh\\:mm\\:ss}");
        if (SystemMemory.PeakResidentBytes() is { } peak)
            Note($"peak resident memory: {MemoryEstimator.FormatBytes(peak)} (estimated {MemoryEstimator.FormatBytes(estimatedPeak!.Value)})");
        observer.On(new RunFinished("train", metrics));
        return new WorkflowResult("train", metrics, result);
    }

    /// <summary>
    /// The memory pre-flight, before the tokenizer, the data or any weight is loaded: a run whose estimated peak
    /// exceeds the available memory stops here with the estimate and the options that would fit, rather than with an
    /// OutOfMemoryException or the kernel's OOM killer hours later. Returns the estimated peak.
    /// </summary>
    internal static long PreflightMemory(SftConfig cfg, bool skip, IRunObserver observer)
    {
        var check = MemoryCheck.Run(cfg, SystemMemory.Read());
        if (check.Fits) return check.Estimate.TotalBytes;
        if (skip)
        {
            observer.On(new RunNote($"note: --skip-memory-check: training although the estimated peak {MemoryEstimator.FormatBytes(check.Estimate.TotalBytes)} exceeds the {MemoryEstimator.FormatBytes(check.Available!.Bytes)} available"));
            return check.Estimate.TotalBytes;
        }
        observer.On(new RunReport(check.Format()));
        throw new InsufficientMemoryException(
            $"the estimated peak memory {MemoryEstimator.FormatBytes(check.Estimate.TotalBytes)} exceeds the {MemoryEstimator.FormatBytes(check.Available!.Bytes)} available; apply one of the options above, or pass --skip-memory-check to train anyway");
    }

    /// <summary>do_eval without do_train: one pass of <see cref="LossEvaluator{TExample}"/> with the stage's step, eval_results.json in output_dir.</summary>
    internal static WorkflowResult Evaluate<TExample>(SftConfig cfg, ITrainingStep<TExample> step, IReadOnlyList<TExample> examples, IRunObserver observer)
    {
        string outputDir = cfg.Training.OutputDir;
        observer.On(new RunNote($"evaluating {examples.Count} examples"));
        observer.On(new RunStarted(new RunPlan("eval", cfg.Finetuning.Stage, examples.Count, BatchSize: cfg.Training.PerDeviceEvalBatchSize)));
        var evaluator = new LossEvaluator<TExample>(step, examples, cfg.Training.PerDeviceEvalBatchSize)
        {
            ExamplesDone = done => observer.On(new EvaluationProgressed(done, examples.Count)),
        };
        var (result, metrics) = evaluator.EvaluateAndReport(observer);
        observer.On(new Evaluated(null, 0, result, AfterTraining: false));
        observer.On(new RunNote($"saved eval_results.json to {outputDir}"));
        var sorted = Sorted(metrics);
        observer.On(new RunFinished("eval", sorted));
        return new WorkflowResult("eval", sorted);
    }

    /// <summary>
    /// do_predict with predict_with_generate: the base model with the config's adapters applied unmerged generates for
    /// every eval_dataset prompt (batched, left-padded) with the config's generation keys; see <see cref="PredictionRun"/>.
    /// </summary>
    private static WorkflowResult Predict(SftConfig cfg, Tokenizer tokenizer, ChatTemplate template, IRunObserver observer)
    {
        string modelDir = cfg.Model.ModelNameOrPath;
        var (examples, report) = SupervisedDatasets.LoadForGeneration(cfg.Data, tokenizer, template, cfg.Training.Seed);
        foreach (string line in report.ToString().Split('\n')) observer.On(new RunNote(line));
        using var model = DecoderModel.LoadForGeneration(modelDir, adapterDirectories: cfg.Model.AdapterNameOrPath, quantization: cfg.Model.Quantization);
        var g = cfg.Generating;
        var options = new GenerationOptions
        {
            Seed = cfg.Training.Seed,
            StopTokenIds = PredictionRun.StopTokenIds(tokenizer, template, modelDir),
        }.With(g);
        var settings = new PredictionSettings(options, cfg.Training.PerDeviceEvalBatchSize, g.SkipSpecialTokens, TokenizerConfig.PadTokenId(tokenizer, modelDir));
        observer.On(new RunNote($"predicting {examples.Count} examples in batches of {settings.BatchSize} ({(g.DoSample ? $"sampling: temperature {g.Temperature}, top_p {g.TopP}, top_k {g.TopK}" : "greedy")}, max_new_tokens {g.MaxNewTokens})"));
        observer.On(new RunStarted(new RunPlan("predict", null, examples.Count, BatchSize: settings.BatchSize)));
        var outcome = PredictionRun.Execute(model, tokenizer, examples, settings, observer);
        observer.On(new RunNote($"saved {PredictionRun.PredictionsFileName} and predict_results.json to {cfg.Training.OutputDir}"));
        var metrics = Sorted(outcome.Metrics);
        observer.On(new RunFinished("predict", metrics));
        return new WorkflowResult("predict", metrics);
    }

    private static List<KeyValuePair<string, object?>> Sorted(IEnumerable<KeyValuePair<string, object?>> metrics) =>
        metrics.OrderBy(m => m.Key, StringComparer.Ordinal).ToList();

    private static List<(int Step, double Value)> Points(IReadOnlyList<LossPoint> curve) => curve.Select(p => (p.Step, p.Loss)).ToList();
}
