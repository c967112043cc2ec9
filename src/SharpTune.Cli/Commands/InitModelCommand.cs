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
        var dtype = new Option<string>("--dtype") { Description = "Weight dtype: bfloat16 (as Qwen ships) or float32 (the same values, widened)", DefaultValueFactory = _ => "bfloat16" };
        dtype.AcceptOnlyFromAmong("bfloat16", "float32");
        var command = new Command("init-model", "Write a random-initialised Hugging Face model folder (config, safetensors, tokenizer).")
        {
            preset, tokenizer, output, seed, dtype,
        };
        command.SetAction(r => CliAction.Run(() =>
        {
            var p = ModelPreset.Get(r.GetValue(preset)!);
            string outDir = r.GetValue(output)!;
            ModelInitializer.Create(p, r.GetValue(tokenizer)!, outDir, r.GetValue(seed), r.GetValue(dtype) == "float32" ? Engine.DType.F32 : Engine.DType.BF16);
            Console.WriteLine($"wrote {p.Name} model to {outDir}");
            return 0;
        }));
        return command;
    }
}
