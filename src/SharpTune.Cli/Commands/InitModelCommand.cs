using System.CommandLine;
using SharpTune.Model;

namespace SharpTune.Cli.Commands;

/// <summary>`sharptune init-model`: writes a random-initialised model folder from a named preset.</summary>
public static class InitModelCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = $"One of: {string.Join(", ", ModelPreset.All.Select(p => p.Name))}", Required = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "Folder with the tokenizer.json (and tokenizer_config.json) to ship with the model", Required = true };
        var output = new Option<string>("--out") { Description = "Output model folder", Required = true };
        var seed = new Option<int>("--seed") { Description = "Random seed for the weights", DefaultValueFactory = _ => 0 };
        var command = new Command("init-model", "Write a random-initialised Hugging Face model folder (config, bf16 safetensors, tokenizer).")
        {
            preset, tokenizer, output, seed,
        };
        command.SetAction(r => CliAction.Run(() =>
        {
            var p = ModelPreset.Get(r.GetValue(preset)!);
            string outDir = r.GetValue(output)!;
            ModelInitializer.Create(p, r.GetValue(tokenizer)!, outDir, r.GetValue(seed));
            Console.WriteLine($"wrote {p.Name} model to {outDir}");
            return 0;
        }));
        return command;
    }
}
