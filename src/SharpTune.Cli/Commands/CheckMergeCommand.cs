using System.CommandLine;
using SharpTune.Export;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune check merge`: merges PEFT adapters (any mergeable peft_type: LoRA, IA3) into a base model and writes the
/// Hugging Face folder, so the merged weights can be compared with PEFT's merge_and_unload. generation_config.json is copied unchanged (no template).
/// </summary>
public static class CheckMergeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Base model folder", Required = true };
        var adapter = new Option<string[]>("--adapter") { Description = "PEFT adapter folder (LoRA, IA3); repeat to merge several in order", Required = true };
        var output = new Option<string>("--out") { Description = "Folder for the merged model (not the base folder)", Required = true };
        var exportSize = new Option<int>("--export-size") { Description = "Largest weights shard in GB (10^9 bytes), as LLaMA-Factory's export_size", DefaultValueFactory = _ => 5 };
        var command = new Command("merge", "Merge PEFT adapters into the base model and write a Hugging Face model folder; prints the files written")
        {
            model, adapter, output, exportSize,
        };
        command.SetAction(r => CliAction.Run(() =>
        {
            int size = r.GetValue(exportSize);
            if (size <= 0) throw new ArgumentException($"--export-size must be a positive number of GB, got {size}");
            var written = ModelExporter.Export(r.GetValue(model)!, r.GetValue(adapter)!, r.GetValue(output)!, size * ModelExporter.BytesPerGigabyte, template: null);
            foreach (string file in written) Console.WriteLine(file);
            return 0;
        }));
        return command;
    }
}
