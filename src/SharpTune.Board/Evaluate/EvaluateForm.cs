using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Board.Train;
using SharpTune.Hparams;

namespace SharpTune.Board.Evaluate;

/// <summary>
/// An evaluation or prediction run as the evaluate tab asks for it: `sharptune train` with do_eval (the loss) or
/// do_predict + predict_with_generate (generated answers scored by BLEU/ROUGE) on the top bar's model and adapters,
/// queued by the Train tab's <see cref="Runs.RunQueue"/> like a training run, in saves/MODEL/TYPE/eval_TIMESTAMP.
/// </summary>
public static class EvaluateForm
{
    public static TrainForm.TrainPlan Plan(BoardRoots roots, JsonObject body)
    {
        var selected = TabSelection.Read(roots, body);
        string method = BoardJson.RequiredString(body, "finetuning_type");
        if (!FinetuningArguments.FinetuningTypeNames.Contains(method)) throw BoardException.BadRequest($"field 'finetuning_type': {BoardException.Quote(method)} is not a finetuning type");
        var datasets = body["datasets"] is JsonArray list
            ? list.Select((d, i) => d is JsonValue v && v.TryGetValue(out string? name) && name.Trim().Length > 0
                ? name.Trim() : throw BoardException.BadRequest($"field 'datasets' item {i}: must be a non-empty string")).ToList()
            : throw BoardException.BadRequest("field 'datasets' must be a list of dataset names");
        if (datasets.Count == 0) throw BoardException.BadRequest("field 'datasets': choose at least one dataset");
        bool predict = body["predict"] is JsonValue p && p.TryGetValue(out bool b) ? b : throw BoardException.BadRequest("field 'predict' must be true or false");
        string outputDir = roots.Confine(Path.Combine("saves", selected.ModelKey, method,
            "eval_" + DateTime.Now.ToString("yyyy-MM-dd-HH-mm-ss", CultureInfo.InvariantCulture)), BoardRoot.Saves);

        var yaml = new StringBuilder();
        TrainForm.Line(yaml, "model_name_or_path", selected.ModelDir);
        if (selected.Adapters.Count > 0) TrainForm.Line(yaml, "adapter_name_or_path", string.Join(",", selected.Adapters));
        TrainForm.Line(yaml, "template", selected.Template);
        if (selected.Quantization is { } q)
        {
            TrainForm.Line(yaml, "quantization_bit", q.Bits);
            TrainForm.Line(yaml, "quantization_type", q.Type.ToString().ToLowerInvariant());
        }
        TrainForm.Line(yaml, "stage", "sft");
        TrainForm.Line(yaml, "finetuning_type", method);
        TrainForm.Line(yaml, "do_train", false);
        TrainForm.Line(yaml, predict ? "do_predict" : "do_eval", true);
        if (predict) TrainForm.Line(yaml, "predict_with_generate", true);
        TrainForm.Line(yaml, "dataset_dir", roots[BoardRoot.Data]);
        TrainForm.Line(yaml, "eval_dataset", string.Join(",", datasets));
        TrainForm.Line(yaml, "max_samples", BoardJson.RequiredInteger(body, "max_samples", 1, 1_000_000));
        TrainForm.Line(yaml, "cutoff_len", BoardJson.RequiredInteger(body, "cutoff_len", 1, 1_000_000));
        TrainForm.Line(yaml, "per_device_eval_batch_size", BoardJson.RequiredInteger(body, "per_device_eval_batch_size", 1, 1024));
        if (predict) TrainForm.Line(yaml, "max_new_tokens", BoardJson.RequiredInteger(body, "max_new_tokens", 1, 1_000_000));
        TrainForm.Line(yaml, "output_dir", outputDir);

        string text = yaml.ToString();
        try
        {
            SftConfig.Parse(text, [], roots.Root);
        }
        catch (Exception e) when (e is ConfigException or ArgumentException or InvalidDataException)
        {
            throw BoardException.BadRequest(e.Message);
        }
        return new TrainForm.TrainPlan(text, outputDir, $"sharptune train {Path.Combine(roots.Display(outputDir), TrainForm.ConfigFileName)}", selected.ModelKey);
    }

}
