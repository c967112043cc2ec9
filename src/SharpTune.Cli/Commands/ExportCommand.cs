using System.CommandLine;
using SharpTune.Export;
using SharpTune.Hparams;
using SharpTune.Templates;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune export CONFIG.yaml [key=value ...]`: LLaMA-Factory's merge/export step. Merges the config's adapters
/// (adapter_name_or_path) into model_name_or_path and writes a Hugging Face folder to export_dir, sharded by
/// export_size GB, with the template's stop token as eos in generation_config.json. A quantization_bit in the config
/// (a QLoRA run's) does not quantize the export: the adapters are merged into the unquantized weights on disk.
/// </summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "LLaMA-Factory style YAML (model_name_or_path, adapter_name_or_path, template, finetuning_type, export_dir, export_size)" };
        var overrides = new Argument<string[]>("overrides") { Description = "key=value pairs that replace the file's values", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("export", "Merge adapters into the base model and export a Hugging Face model folder") { config, overrides };
        command.SetAction(r => CliAction.Run(() =>
        {
            var cfg = SftConfig.Load(r.GetValue(config)!, r.GetValue(overrides) ?? [], ConfigUse.Export);
            foreach (string note in cfg.Notes) Console.Error.WriteLine($"[sharptune] note: {note}");
            string modelDir = cfg.Model.ModelNameOrPath;
            var template = ChatTemplates.ForModel(cfg.Data.Template ?? "auto", modelDir);
            if (cfg.Model.Quantization is { } quantization)
                Console.Error.WriteLine($"[sharptune] note: quantization_bit {quantization.Bits}: the adapters were trained on a {quantization} base; they are merged into the unquantized weights read from {modelDir}, and the export is unquantized");
            var written = ModelExporter.Export(modelDir, cfg.Model.AdapterNameOrPath, cfg.Export.ExportDir,
                cfg.Export.ExportSize * ModelExporter.BytesPerGigabyte, template);
            Console.Error.WriteLine($"[sharptune] exported {(cfg.Model.AdapterNameOrPath.Count == 0 ? "the model" : $"the base merged with {string.Join(", ", cfg.Model.AdapterNameOrPath)}")} to {cfg.Export.ExportDir}");
            foreach (string file in written) Console.WriteLine(file);
            return 0;
        }));
        return command;
    }
}
