using System.CommandLine;
using System.Text.Json;
using SharpTune.Data;
using SharpTune.FineTuning;
using SharpTune.IO.Safetensors;
using SharpTune.Peft;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Objectives;
using SharpTune.Training.Preference;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune check pref`: one preference-training step's numbers on one batch, for comparison with LLaMA-Factory/TRL:
/// the loss, the policy's and reference's log-prob sums, the rewards, and the gradient of every trained tensor. The
/// policy is the base model with the adapter, the reference the same model with the adapter disabled; without an
/// adapter every weight trains and the reference is a frozen copy of the model. `--stage` picks the objective; each
/// stage is one entry of <see cref="Stages"/>.
/// </summary>
public static class CheckPrefCommand
{
    /// <summary>
    /// What a stage's check is given: the parsed command line, the policy (the adapter trainable, or every weight), the
    /// model folder and the input batch.
    /// </summary>
    public sealed record Check(ParseResult Parse, Options Options, ITrainableModel Model, DecoderModel Decoder, string ModelDirectory,
        string InputPath, JsonElement Batch)
    {
        public T Value<T>(Option<T> option) => Parse.GetValue(option)!;

        /// <summary>The reference: the policy with its adapter disabled, or without an adapter a frozen copy of the model.</summary>
        public ReferenceModel Reference() =>
            ReferenceModel.ForPolicy(Decoder, () => DecoderModel.Load(ModelDirectory, gradientCheckpointing: true));
    }

    public sealed class Options
    {
        public Option<string> PrefLoss { get; } = new("--pref-loss") { Description = $"pref_loss: {string.Join(", ", PairLoss.Names)} (stage dpo)", DefaultValueFactory = _ => "sigmoid" };
        public Option<double> PrefBeta { get; } = new("--pref-beta") { Description = "pref_beta", DefaultValueFactory = _ => 0.1 };
        public Option<double> LabelSmoothing { get; } = new("--label-smoothing") { Description = "dpo_label_smoothing (pref_loss sigmoid)", DefaultValueFactory = _ => 0.0 };
        public Option<double> PrefFtx { get; } = new("--pref-ftx") { Description = "pref_ftx: weight of the chosen responses' SFT loss", DefaultValueFactory = _ => 0.0 };
        public Option<double> SimpoGamma { get; } = new("--simpo-gamma") { Description = "simpo_gamma (pref_loss simpo)", DefaultValueFactory = _ => 0.5 };
        public Option<double> KtoChosenWeight { get; } = new("--kto-chosen-weight") { Description = "kto_chosen_weight (stage kto)", DefaultValueFactory = _ => 1.0 };
        public Option<double> KtoRejectedWeight { get; } = new("--kto-rejected-weight") { Description = "kto_rejected_weight (stage kto)", DefaultValueFactory = _ => 1.0 };
        public Option<string?> ValueHead { get; } = new("--value-head") { Description = "value_head.safetensors (v_head.summary.weight/bias) the scores start from (stage rm)" };

        public IEnumerable<Option> All => [PrefLoss, PrefBeta, LabelSmoothing, PrefFtx, SimpoGamma, KtoChosenWeight, KtoRejectedWeight, ValueHead];
    }

    /// <summary>Each stage's check: the output tensors besides the gradients (which are added for every trainable tensor).</summary>
    public static IReadOnlyDictionary<string, Func<Check, List<(string Name, long[] Shape, float[] Values)>>> Stages { get; } =
        new Dictionary<string, Func<Check, List<(string, long[], float[])>>>
        {
            ["dpo"] = Pairwise,
            ["kto"] = Kto,
            ["rm"] = RewardModel,
        };

    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model folder", Required = true };
        var adapter = new Option<string?>("--adapter") { Description = "PEFT adapter folder: the policy trains it and the reference is the model with it disabled (default: every weight trains and the reference is a frozen copy)" };
        var input = new Option<string>("--input") { Description = "JSON batch as LLaMA-Factory's collators give it (dpo: chosen_*/rejected_*; kto: input_ids, attention_mask, labels, kl_*, kto_tags); a file whose 'batch' holds it is read too", Required = true };
        var output = new Option<string>("--out") { Description = "Output safetensors: loss, policy_/reference_chosen_/rejected_logps, rewards_chosen, rewards_rejected (kto: kl; rm: chosen_scores, rejected_scores instead), grad.<name>", Required = true };
        var stage = new Option<string>("--stage") { Description = $"Objective: {string.Join(", ", Stages.Keys)}", DefaultValueFactory = _ => "dpo" };
        var options = new Options();
        var command = new Command("pref", "Compute one preference-training step's loss, log-probs, rewards and adapter gradients on one batch")
        {
            model, adapter, input, output, stage,
        };
        foreach (var option in options.All) command.Options.Add(option);
        command.SetAction(r => CliAction.Run(() =>
        {
            string stageName = r.GetValue(stage)!;
            var run = Stages.TryGetValue(stageName, out var s) ? s : throw new ArgumentException($"--stage must be one of {string.Join(", ", Stages.Keys)}, got '{stageName}'");
            string inputPath = r.GetValue(input)!;
            var root = BatchFile.ReadRoot(inputPath);
            if (root.TryGetProperty("batch", out var inner) && inner.ValueKind == JsonValueKind.Object) root = inner;
            string modelDirectory = r.GetValue(model)!;
            string? adapterDirectory = r.GetValue(adapter);
            var decoder = DecoderModel.Load(modelDirectory, gradientCheckpointing: false);
            using ITrainableModel trainable = adapterDirectory is null ? WeightsFineTuning.Full(decoder) : PeftAdapterFolders.ResumeTraining(decoder, adapterDirectory);
            Console.Error.WriteLine($"[sharptune] {TrainableModels.Summary(trainable)}");
            foreach (var p in trainable.TrainableParameters) p.ZeroGrad();
            var tensors = run(new Check(r, options, trainable, decoder, modelDirectory, inputPath, root));
            foreach (var p in trainable.TrainableParameters)
                tensors.Add(("grad." + p.Name, p.Shape.Select(d => (long)d).ToArray(), p.Grad));
            SafetensorsWriter.Write(r.GetValue(output)!, tensors);
            return 0;
        }));
        return command;
    }

    private static List<(string, long[], float[])> Pairwise(Check check)
    {
        var o = check.Options;
        var loss = PairLoss.Create(check.Value(o.PrefLoss), check.Value(o.PrefBeta), check.Value(o.LabelSmoothing), check.Value(o.SimpoGamma));
        var pairs = PairwiseStep.Concatenate(BatchFile.Read(check.InputPath, check.Batch, "chosen_"),
            BatchFile.Read(check.InputPath, check.Batch, "rejected_"), padTokenId: 0);
        using var reference = check.Reference();
        var step = new PairwiseStep(check.Decoder, reference, loss, check.Value(o.PrefFtx));
        var result = step.Train(pairs, 1f, new SeededRandom(0));
        // Every loss reports the reference log-probs, also those that do not read them (orpo, simpo).
        var referenceSums = result.ReferenceSums ?? reference.LogProbSums(pairs);
        int n = result.Outcome.Losses.Length;
        return
        [
            Scalar("loss", result.Loss.Mean),
            Vector("policy_chosen_logps", result.Outcome.PolicyChosen),
            Vector("policy_rejected_logps", result.Outcome.PolicyRejected),
            Vector("reference_chosen_logps", referenceSums[..n]),
            Vector("reference_rejected_logps", referenceSums[n..]),
            Vector("rewards_chosen", result.Outcome.RewardsChosen),
            Vector("rewards_rejected", result.Outcome.RewardsRejected),
        ];
    }

    private static List<(string, long[], float[])> Kto(Check check)
    {
        var o = check.Options;
        var batch = BatchFile.Read(check.InputPath, check.Batch, "");
        var klBatch = BatchFile.Read(check.InputPath, check.Batch, "kl_");
        if (!check.Batch.TryGetProperty("kto_tags", out var tags) || tags.ValueKind != JsonValueKind.Array
            || tags.EnumerateArray().Any(t => t.ValueKind is not (JsonValueKind.True or JsonValueKind.False)))
            throw new InvalidDataException($"{check.InputPath}: 'kto_tags' must be a list of booleans");
        bool[] desirable = tags.EnumerateArray().Select(t => t.GetBoolean()).ToArray();
        if (desirable.Length != batch.Batch)
            throw new InvalidDataException($"{check.InputPath}: 'kto_tags' has {desirable.Length} values for {batch.Batch} examples");
        using var reference = check.Reference();
        var step = new KtoStep(check.Decoder, reference, check.Value(o.PrefBeta), check.Value(o.KtoChosenWeight), check.Value(o.KtoRejectedWeight), check.Value(o.PrefFtx));
        var result = step.Train(batch, klBatch, desirable, 1f, new SeededRandom(0));
        double[] Where(double[] values, bool wanted) => values.Where((_, i) => desirable[i] == wanted).ToArray();
        return
        [
            Scalar("loss", result.Loss.Mean),
            Vector("policy_chosen_logps", Where(result.Outcome.Policy, true)),
            Vector("policy_rejected_logps", Where(result.Outcome.Policy, false)),
            Vector("reference_chosen_logps", Where(result.ReferenceSums, true)),
            Vector("reference_rejected_logps", Where(result.ReferenceSums, false)),
            Vector("rewards_chosen", Where(result.Outcome.Rewards, true)),
            Vector("rewards_rejected", Where(result.Outcome.Rewards, false)),
            Scalar("kl", result.Outcome.Kl),
        ];
    }

    /// <summary>
    /// The reward model's pairwise loss (LLaMA-Factory's PairwiseTrainer): the value head's scores at each sequence's
    /// last real token, without its training dropout; the value head's gradients are added beside the adapter's.
    /// </summary>
    private static List<(string, long[], float[])> RewardModel(Check check)
    {
        string headFile = check.Value(check.Options.ValueHead) ?? throw new ArgumentException("--stage rm needs --value-head FILE (value_head.safetensors)");
        var head = ValueHead.Load(headFile, check.Decoder.Config.HiddenSize);
        var pairs = PairwiseStep.Concatenate(BatchFile.Read(check.InputPath, check.Batch, "chosen_"),
            BatchFile.Read(check.InputPath, check.Batch, "rejected_"), padTokenId: 0);
        var loss = new PairwiseRewardLoss(head, dropout: null);
        check.Decoder.ForwardBackward(pairs, loss, objective: null, 1f, new SeededRandom(0));
        var scores = loss.Last!;
        var tensors = new List<(string, long[], float[])>
        {
            Scalar("loss", scores.Loss),
            Vector("chosen_scores", scores.Chosen),
            Vector("rejected_scores", scores.Rejected),
        };
        foreach (var p in head.Parameters) tensors.Add(("grad." + p.Name, p.Shape.Select(d => (long)d).ToArray(), p.Grad));
        return tensors;
    }

    private static (string, long[], float[]) Scalar(string name, double value) => (name, [1], [(float)value]);

    private static (string, long[], float[]) Vector(string name, double[] values) => (name, [values.Length], values.Select(v => (float)v).ToArray());
}
