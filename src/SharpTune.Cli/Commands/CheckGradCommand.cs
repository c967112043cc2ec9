using System.CommandLine;
using SharpTune.Data;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Peft;
using SharpTune.Training;
using SharpTune.FineTuning;
using SharpTune.Training.Model;
using SharpTune.Training.Optim;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune check grad`: trains on one batch for N AdamW steps (torch.optim.AdamW semantics, one parameter group)
/// and writes the losses, the step-1 gradients and the final parameters, for comparison with PyTorch/PEFT.
/// </summary>
public static class CheckGradCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model folder", Required = true };
        var adapter = new Option<string?>("--adapter") { Description = "PEFT adapter folder (its adapter_config.json peft_type picks the method): train only the adapter (default: full fine-tuning)" };
        var input = new Option<string>("--input") { Description = "JSON file {\"input_ids\": [[...]], \"attention_mask\": [[...]], \"labels\": [[...]]}", Required = true };
        var output = new Option<string>("--out") { Description = "Output safetensors: loss, grad.<name> (step 1), param.<name> (after the last step)", Required = true };
        var steps = new Option<int>("--steps") { Description = "AdamW steps (0: gradients only)", DefaultValueFactory = _ => 0 };
        var lr = new Option<double>("--lr") { Description = "Learning rate", DefaultValueFactory = _ => 1e-3 };
        var weightDecay = new Option<double>("--weight-decay") { Description = "AdamW weight decay, applied to every trained parameter", DefaultValueFactory = _ => 0.0 };
        var maxGradNorm = new Option<double>("--max-grad-norm") { Description = "Clip the global gradient norm before each step (0: no clipping)", DefaultValueFactory = _ => 0.0 };
        var command = new Command("grad", "Compute gradients (and optionally AdamW steps) on one batch and write them as safetensors")
        {
            model, adapter, input, output, steps, lr, weightDecay, maxGradNorm,
        };
        command.SetAction(r => CliAction.Run(() =>
        {
            int stepCount = r.GetValue(steps);
            if (stepCount < 0) throw new ArgumentException($"--steps must not be negative, got {stepCount}");
            string inputPath = r.GetValue(input)!;
            var batch = BatchFile.Read(inputPath, BatchFile.ReadRoot(inputPath));
            var decoder = DecoderModel.Load(r.GetValue(model)!, gradientCheckpointing: false);
            string? adapterDirectory = r.GetValue(adapter);
            using ITrainableModel trainable = adapterDirectory is null ? WeightsFineTuning.Full(decoder) : PeftAdapterFolders.ResumeTraining(decoder, adapterDirectory);
            Console.Error.WriteLine($"[sharptune] {TrainableModels.Summary(trainable)}");
            Run(trainable, batch, stepCount, r.GetValue(lr), r.GetValue(weightDecay), r.GetValue(maxGradNorm), r.GetValue(output)!);
            return 0;
        }));
        return command;
    }

    private static void Run(ITrainableModel model, TrainingBatch batch, int steps, double lr, double weightDecay, double maxGradNorm, string outputPath)
    {
        var parameters = model.TrainableParameters;
        // Plain torch.optim.AdamW decays every parameter it is given, so the optimizer sees views that all decay.
        var decayAll = parameters.Select(p => new Parameter(p.Name, p.Shape, p.Data) { WeightDecay = true }).ToArray();
        var optimizer = new AdamW(decayAll, weightDecay: weightDecay);
        var losses = new List<float>();
        float[][]? firstGradients = null;
        var random = new SeededRandom(0);
        for (int step = 1; step <= Math.Max(1, steps); step++)
        {
            foreach (var p in parameters) p.ZeroGrad();
            losses.Add((float)model.ForwardBackward(batch, 1f, random).Mean);
            firstGradients ??= parameters.Select(p => (float[])p.Grad.Clone()).ToArray();
            if (steps == 0) break;
            for (int i = 0; i < parameters.Count; i++) parameters[i].Grad.CopyTo(decayAll[i].Grad, 0);
            GradientClipping.Clip(decayAll, maxGradNorm);
            optimizer.Update(lr);
        }
        var tensors = new List<(string, long[], float[])> { ("loss", [losses.Count], losses.ToArray()) };
        for (int i = 0; i < parameters.Count; i++)
        {
            long[] shape = parameters[i].Shape.Select(d => (long)d).ToArray();
            tensors.Add(("grad." + parameters[i].Name, shape, firstGradients![i]));
            tensors.Add(("param." + parameters[i].Name, shape, parameters[i].Data));
        }
        SafetensorsWriter.Write(outputPath, tensors);
    }
}
