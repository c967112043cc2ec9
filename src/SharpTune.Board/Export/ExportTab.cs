using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Board.Tasks;
using SharpTune.Board.Train;
using SharpTune.Engine;
using SharpTune.Hparams;
using SharpTune.Workflows;

namespace SharpTune.Board.Export;

/// <summary>What the export tab merges: the top bar's model, adapters and template, and where and how to write.</summary>
/// <param name="ExportSizeGb">The largest shard in decimal gigabytes (LLaMA-Factory's export_size).</param>
/// <param name="StoreAs">The dtype the weights are written in; null keeps the base model's.</param>
public sealed record ExportRequest(string ModelDir, IReadOnlyList<string> Adapters, string Template, string ExportDir, int ExportSizeGb, DType? StoreAs);

/// <summary>
/// The export tab: <c>sharptune export</c>'s config (the same keys, checked by the same <see cref="SftConfig"/> rules)
/// run by <see cref="ExportWorkflow"/> as a board task, so its tensor progress and the files written show on the page.
/// </summary>
public static class ExportTab
{
    /// <summary>The config <c>sharptune export</c> would read for this request, validated for export.</summary>
    /// <exception cref="ConfigException">A value the export refuses (the message names the key).</exception>
    public static SftConfig Config(ExportRequest r)
    {
        var yaml = new StringBuilder();
        TrainForm.Line(yaml, "model_name_or_path", r.ModelDir);
        if (r.Adapters.Count > 0)
        {
            TrainForm.Line(yaml, "adapter_name_or_path", string.Join(",", r.Adapters));
            TrainForm.Line(yaml, "finetuning_type", "lora");
        }
        TrainForm.Line(yaml, "template", r.Template);
        TrainForm.Line(yaml, "export_dir", r.ExportDir);
        TrainForm.Line(yaml, "export_size", r.ExportSizeGb);
        var cfg = SftConfig.Parse(yaml.ToString());
        cfg.Validate(ConfigUse.Export);
        return cfg;
    }

    /// <summary>Starts the export; the task's result names the folder (as <paramref name="display"/> shows a path) and the files written.</summary>
    public static BoardTask Start(BoardTaskSlot slot, ExportRequest r, Func<string, string> display)
    {
        var cfg = Config(r);
        return slot.Start("export", (cancellation, observer) =>
        {
            var files = ExportWorkflow.Run(cfg, cancellation, observer, r.StoreAs);
            return new JsonObject
            {
                ["export_dir"] = display(cfg.Export.ExportDir),
                ["dtype"] = r.StoreAs?.ToString(),
                ["files"] = new JsonArray(files.Select(f => (JsonNode?)f).ToArray()),
            };
        });
    }
}
