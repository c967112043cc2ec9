using SharpTune.Evaluation.Prediction;
using SharpTune.IO;
using SharpTune.Training;
using SharpTune.Training.Trainer;

namespace SharpTune.Reporting;

/// <summary>
/// The result files a run leaves in output_dir, written from its events as transformers and LLaMA-Factory write them:
/// {split}_results.json merged into all_results.json (<see cref="ResultsReported"/>, transformers' save_metrics),
/// trainer_state.json (<see cref="FinalStateReported"/>, save_state), generated_predictions.jsonl
/// (<see cref="PredictionsMade"/>) and the loss plots (<see cref="LossCurveReported"/>). Every file is written
/// atomically. A component used alone (a trainer, a prediction run) leaves these files only when given this observer.
/// </summary>
/// <param name="notes">Told where each loss plot went (or that a curve had nothing to plot), as LLaMA-Factory prints it.</param>
public sealed class ResultFiles(string outputDir, IRunObserver? notes = null) : IRunObserver
{
    public const string AllResultsFileName = "all_results.json";

    public void On(RunEvent e)
    {
        switch (e)
        {
            case ResultsReported results:
                WriteMetrics(results.Split, results.Metrics);
                break;
            case FinalStateReported final:
                Directory.CreateDirectory(outputDir);
                AtomicFile.WriteText(Path.Combine(outputDir, TrainerState.FileName), final.State.ToJson());
                break;
            case PredictionsMade made:
                WritePredictions(made.Predictions);
                break;
            case LossCurveReported curve:
                var written = LossPlot.Write(outputDir, curve.Points, curve.Key);
                if (written.Count == 0) notes?.On(new RunNote($"no {curve.Key} to plot"));
                foreach (string path in written) notes?.On(new RunNote($"figure saved at: {path}"));
                break;
        }
    }

    /// <summary>
    /// Writes <paramref name="metrics"/> to output_dir/{split}_results.json and merges them into all_results.json
    /// (json.dump with indent 4 and sorted keys, as transformers writes them). Values are doubles, ints or strings.
    /// </summary>
    private void WriteMetrics(string split, IReadOnlyList<KeyValuePair<string, object?>> metrics)
    {
        Directory.CreateDirectory(outputDir);
        AtomicFile.WriteText(Path.Combine(outputDir, $"{split}_results.json"), PythonJson.Dumps(metrics, indent: 4, sortKeys: true));
        string allPath = Path.Combine(outputDir, AllResultsFileName);
        var merged = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (File.Exists(allPath) && PythonJson.Parse(File.ReadAllText(allPath)) is List<KeyValuePair<string, object?>> existing)
            foreach (var (key, value) in existing) merged[key] = value;
        foreach (var (key, value) in metrics) merged[key] = value;
        AtomicFile.WriteText(allPath, PythonJson.Dumps(merged.ToList(), indent: 4, sortKeys: true));
    }

    /// <summary>One json.dumps(..., ensure_ascii=False) line per prediction, as LLaMA-Factory's save_predictions writes them.</summary>
    private void WritePredictions(IReadOnlyList<Prediction> predictions)
    {
        var text = new System.Text.StringBuilder();
        foreach (var p in predictions)
        {
            var line = new List<KeyValuePair<string, object?>> { new("prompt", p.Prompt), new("predict", p.Predict), new("label", p.Label) };
            text.Append(PythonJson.Dumps(line)).Append('\n');
        }
        Directory.CreateDirectory(outputDir);
        AtomicFile.WriteText(Path.Combine(outputDir, PredictionRun.PredictionsFileName), text.ToString());
    }
}
