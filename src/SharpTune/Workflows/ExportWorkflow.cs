using SharpTune.Engine;
using SharpTune.Export;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Workflows;

/// <summary>
/// LLaMA-Factory's merge/export step as a library call: merges the config's adapters (adapter_name_or_path) into
/// model_name_or_path and writes a Hugging Face folder to export_dir, sharded by export_size GB, with the template's stop
/// token as eos in generation_config.json. A quantization_bit in the config (a QLoRA run's) does not quantize the
/// export: the adapters are merged into the unquantized weights on disk. Cancellation is honoured between tensors and
/// leaves export_dir as it was. Returns the files written.
/// </summary>
public static class ExportWorkflow
{
    /// <param name="storeAs">The dtype every floating-point tensor is written in (the board's export tab offers it); null keeps the base's.</param>
    public static IReadOnlyList<string> Run(SftConfig cfg, CancellationToken cancellation, IRunObserver observer, DType? storeAs = null) =>
        Workflow.Observed("export", observer, () =>
        {
            foreach (string note in cfg.Notes) observer.On(new RunNote($"note: {note}"));
            string modelDir = cfg.Model.ModelNameOrPath;
            var template = ChatTemplates.ForModel(cfg.Data.Template ?? "auto", modelDir);
            if (cfg.Model.Quantization is { } quantization)
                observer.On(new RunNote($"note: quantization_bit {quantization.Bits}: the adapters were trained on a {quantization} base; they are merged into the unquantized weights read from {modelDir}, and the export is unquantized"));
            cancellation.ThrowIfCancellationRequested();
            // As LLaMA-Factory's export_model: a reward model's value head (from the last adapter, else the model folder) goes beside the weights.
            string headSource = Path.Combine(cfg.Model.AdapterNameOrPath.Count > 0 ? cfg.Model.AdapterNameOrPath[^1] : modelDir, ValueHead.FileName);
            string? valueHead = cfg.Finetuning.Stage == "rm" && File.Exists(headSource) ? headSource : null;
            var written = ModelExporter.Export(modelDir, cfg.Model.AdapterNameOrPath, cfg.Export.ExportDir,
                cfg.Export.ExportSize * ModelExporter.BytesPerGigabyte, template,
                cancellation, (done, total) => observer.On(new ExportProgressed(done, total)), valueHead, storeAs);
            if (valueHead is not null) observer.On(new RunNote($"copied the value head {valueHead} to {cfg.Export.ExportDir}"));
            observer.On(new RunNote($"exported {(cfg.Model.AdapterNameOrPath.Count == 0 ? "the model" : $"the base merged with {string.Join(", ", cfg.Model.AdapterNameOrPath)}")} to {cfg.Export.ExportDir}"));
            observer.On(new RunFinished("export", written.Select(f => new KeyValuePair<string, object?>("file", f)).ToList()));
            return written;
        });
}
