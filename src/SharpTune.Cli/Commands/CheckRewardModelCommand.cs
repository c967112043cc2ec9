using System.CommandLine;
using System.Text.Json;
using SharpTune.Data;
using SharpTune.FineTuning;
using SharpTune.IO.Safetensors;
using SharpTune.Peft;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Objectives;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune check pref --stage rm`: the reward model's pairwise loss on one batch of chosen/rejected pairs, with
/// the value head's scores and the gradients of the adapter (or of every weight) and of the value head, for
/// comparison with LLaMA-Factory's PairwiseTrainer. The value head runs without its training dropout.
/// </summary>
public static class CheckRewardModelCommand
{
    public static Command Create()
    {
        var stage = new Option<string>("--stage") { Description = "Preference stage: rm", Required = true };
        var model = new Option<string>("--model") { Description = "Model folder", Required = true };
        var adapter = new Option<string?>("--adapter") { Description = "PEFT adapter folder: train only the adapter (default: full fine-tuning)" };
        var valueHead = new Option<string?>("--value-head") { Description = "value_head.safetensors (v_head.summary.weight/bias) the scores start from" };
        var input = new Option<string>("--input") { Description = "JSON file {chosen_input_ids, chosen_attention_mask, chosen_labels, rejected_*}: lists of lists of integers", Required = true };
        var output = new Option<string>("--out") { Description = "Output safetensors: loss, chosen_scores, rejected_scores, grad.<name>", Required = true };
        var command = new Command("pref", "Compute a preference loss, its scores and gradients on one batch of pairs and write them as safetensors")
        {
            stage, model, adapter, valueHead, input, output,
        };
        command.SetAction(r => CliAction.Run(() =>
        {
            string stageName = r.GetValue(stage)!;
            if (stageName != "rm") throw new ArgumentException($"--stage must be rm, got '{stageName}'");
            var batch = PairBatchFile.Read(r.GetValue(input)!);
            var decoder = DecoderModel.Load(r.GetValue(model)!, gradientCheckpointing: false);
            string? adapterDirectory = r.GetValue(adapter);
            using ITrainableModel trainable = adapterDirectory is null ? WeightsFineTuning.Full(decoder) : PeftAdapterFolders.ResumeTraining(decoder, adapterDirectory);
            string headFile = r.GetValue(valueHead) ?? throw new ArgumentException("--stage rm needs --value-head FILE (value_head.safetensors)");
            var head = ValueHead.Load(headFile, decoder.Config.HiddenSize);
            Console.Error.WriteLine($"[sharptune] {TrainableModels.Summary(trainable)}");
            WriteRewardModel(decoder, trainable, head, batch, r.GetValue(output)!);
            return 0;
        }));
        return command;
    }

    private static void WriteRewardModel(DecoderModel decoder, ITrainableModel trainable, ValueHead head, TrainingBatch batch, string outputPath)
    {
        var parameters = trainable.TrainableParameters.Concat(head.Parameters).ToList();
        foreach (var p in parameters) p.ZeroGrad();
        var loss = new PairwiseRewardLoss(head, dropout: null);
        decoder.ForwardBackward(batch, loss, objective: null, 1f, new SeededRandom(0));
        var scores = loss.Last!;
        var tensors = new List<(string, long[], float[])>
        {
            ("loss", [1], [(float)scores.Loss]),
            ("chosen_scores", [scores.Chosen.Length], scores.Chosen.Select(s => (float)s).ToArray()),
            ("rejected_scores", [scores.Rejected.Length], scores.Rejected.Select(s => (float)s).ToArray()),
        };
        foreach (var p in parameters) tensors.Add(("grad." + p.Name, p.Shape.Select(d => (long)d).ToArray(), p.Grad));
        SafetensorsWriter.Write(outputPath, tensors);
    }
}

/// <summary>
/// A batch of preference pairs as LLaMA-Factory's pairwise collator forms it: the chosen sequences, then the rejected
/// ones, right-padded to one length with id 0, attention 0 and label -100.
/// </summary>
internal static class PairBatchFile
{
    public static TrainingBatch Read(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        int[][] Matrix(string key)
        {
            if (!doc.RootElement.TryGetProperty(key, out var e) || e.ValueKind != JsonValueKind.Array
                || e.EnumerateArray().Any(row => row.ValueKind != JsonValueKind.Array || row.EnumerateArray().Any(v => v.ValueKind != JsonValueKind.Number)))
                throw new InvalidDataException($"{path}: '{key}' must be a list of lists of integers");
            return e.EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
        }
        var rows = new List<(int[] Ids, int[] Mask, int[] Labels)>();
        int? pairs = null;
        foreach (string side in new[] { "chosen", "rejected" })
        {
            int[][] ids = Matrix(side + "_input_ids"), mask = Matrix(side + "_attention_mask"), labels = Matrix(side + "_labels");
            if (ids.Length == 0) throw new InvalidDataException($"{path}: '{side}_input_ids' is empty");
            if (pairs is { } n && ids.Length != n)
                throw new InvalidDataException($"{path}: 'rejected_input_ids' has {ids.Length} rows but 'chosen_input_ids' {n}; each pair needs one of each");
            pairs = ids.Length;
            for (int i = 0; i < ids.Length; i++)
            {
                foreach (var (name, m) in new[] { ("attention_mask", mask), ("labels", labels) })
                    if (m.Length != ids.Length || m[i].Length != ids[i].Length)
                        throw new InvalidDataException($"{path}: '{side}_{name}' row {i} must have the {ids[i].Length} values of '{side}_input_ids' row {i}");
                rows.Add((ids[i], mask[i], labels[i]));
            }
        }
        int t = rows.Max(r => r.Ids.Length);
        var inputIds = new int[rows.Count * t];
        var attention = new int[rows.Count * t];
        var labelIds = new int[rows.Count * t];
        Array.Fill(labelIds, CausalLmLoss.IgnoreIndex);
        for (int s = 0; s < rows.Count; s++)
        {
            rows[s].Ids.CopyTo(inputIds, s * t);
            rows[s].Mask.CopyTo(attention, s * t);
            rows[s].Labels.CopyTo(labelIds, s * t);
        }
        return new TrainingBatch(rows.Count, t, inputIds, attention, labelIds);
    }
}
