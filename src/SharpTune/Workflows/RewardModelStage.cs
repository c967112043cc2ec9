using System.Diagnostics;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.IO;
using SharpTune.Model;
using SharpTune.Reporting;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training;
using SharpTune.Training.Reward;
using SharpTune.Training.Trainer;

namespace SharpTune.Workflows;

/// <summary>
/// Stage rm, LLaMA-Factory's run_rm: a value head on the model (<see cref="RewardModel"/>), trained on ranking
/// datasets with the pairwise loss by the common trainer (<see cref="RewardModelStep"/>); the output is the method's
/// usual files plus value_head.safetensors. do_eval reports eval_loss and eval_accuracy; do_predict scores each eval
/// pair and writes generated_predictions.jsonl as LLaMA-Factory's PairwiseTrainer.save_predictions does.
/// </summary>
public sealed class RewardModelStage : ITrainingStage
{
    public static RewardModelStage Instance { get; } = new();

    /// <summary>Separates the value head's initialisation from the adapter's, which draws from the seed itself.</summary>
    internal const ulong ValueHeadStream = 0x5EED_7A1E_4EAD_0001;

    public WorkflowResult Run(TrainingRequest request, CancellationToken cancellation, IRunObserver observer)
    {
        var (cfg, tokenizer, template, estimatedPeak) = FineTuningStage.Begin(request, ref observer);
        void Note(string text) => observer.On(new RunNote(text));
        string modelDir = cfg.Model.ModelNameOrPath;
        var data = PreferenceDatasets.LoadPairwise(cfg.Data, tokenizer, template, "rm", cfg.Training.Seed);
        foreach (string line in data.Report.ToString().Split('\n')) Note(line);
        if (cfg.Training.DoTrain && data.Train.Count == 0) throw new InvalidDataException("the training set is empty: no dataset record produced a pair");

        int padId = TokenizerConfig.PadTokenId(tokenizer, modelDir);
        var started = Stopwatch.StartNew();
        var inner = FineTuningStage.CreateModel(cfg, Note);
        RewardModel model;
        try
        {
            var head = RewardModel.StartingHead(modelDir, cfg.Model.AdapterNameOrPath, inner.Decoder!.Config.HiddenSize,
                new SeededRandom((ulong)cfg.Training.Seed ^ ValueHeadStream));
            model = new RewardModel(inner, head);
        }
        catch
        {
            inner.Dispose();
            throw;
        }
        using (model)
        {
            var step = new RewardModelStep(model, padId);
            if (cfg.Training.DoPredict) return Predict(cfg, model, data.Eval, padId, observer);
            if (!cfg.Training.DoTrain) return FineTuningStage.Evaluate(cfg, step, data.Eval, observer);
            var trainer = new Trainer<PairwiseExample>(model, cfg.Training, data.Train, data.Eval.Count > 0 ? data.Eval : null, step, observer);
            return FineTuningStage.Train(cfg, model, trainer, data.Train.Count, started, estimatedPeak, cancellation, observer, ["eval_accuracy"]);
        }
    }

    /// <summary>
    /// do_predict: every eval pair scored in batches of per_device_eval_batch_size; predict_results.json holds
    /// predict_loss and predict_accuracy with the speed metrics, and generated_predictions.jsonl a
    /// {"chosen": s, "rejected": s} line per pair, the scores rounded to 2 places.
    /// </summary>
    private static WorkflowResult Predict(SftConfig cfg, RewardModel model, IReadOnlyList<PairwiseExample> pairs, int padId, IRunObserver observer)
    {
        if (pairs.Count == 0) throw new ArgumentException("do_predict scores the evaluation pairs, but there are none (set eval_dataset or val_size)");
        int batchSize = cfg.Training.PerDeviceEvalBatchSize;
        observer.On(new RunStarted(new RunPlan("predict", cfg.Finetuning.Stage, pairs.Count, BatchSize: batchSize)));
        var clock = Stopwatch.StartNew();
        var collator = new PairwiseBatches(padId);
        var lines = new List<string>(pairs.Count);
        double loss = 0, accuracy = 0;
        int batches = 0;
        for (int start = 0; start < pairs.Count; start += batchSize)
        {
            var batch = pairs.Skip(start).Take(batchSize).ToList();
            var scores = model.Score(collator.Collate(batch));
            for (int i = 0; i < batch.Count; i++)
                lines.Add(PythonJson.Dumps(new KeyValuePair<string, object?>[]
                {
                    new("chosen", PythonJson.Round(scores.Chosen[i], 2)), new("rejected", PythonJson.Round(scores.Rejected[i], 2)),
                }));
            loss += scores.Loss * batch.Count;
            accuracy += scores.Accuracy * batch.Count;
            batches++;
            observer.On(new PredictionProgressed("predict", start + batch.Count, pairs.Count, 0, clock.Elapsed));
        }
        double runtime = clock.Elapsed.TotalSeconds;
        string outputDir = cfg.Training.OutputDir;
        Directory.CreateDirectory(outputDir);
        // LLaMA-Factory joins the lines with "\n", without a final newline.
        AtomicFile.WriteText(Path.Combine(outputDir, "generated_predictions.jsonl"), string.Join("\n", lines));
        var metrics = new List<KeyValuePair<string, object?>>
        {
            new("predict_accuracy", accuracy / pairs.Count),
            new("predict_loss", loss / pairs.Count),
            new("predict_runtime", PythonJson.Round(runtime, 4)),
            new("predict_samples_per_second", PythonJson.Round(pairs.Count / runtime, 3)),
            new("predict_steps_per_second", PythonJson.Round(batches / runtime, 3)),
        };
        observer.On(new ResultsReported("predict", metrics));
        observer.On(new RunNote($"saved generated_predictions.jsonl and predict_results.json to {outputDir}"));
        observer.On(new RunFinished("predict", metrics));
        return new WorkflowResult("predict", metrics);
    }
}
