using System.Globalization;
using SharpTune.Data.Cleaning;

namespace SharpTune.Bench;

/// <summary>
/// `sharptune data clean` with the default recipe end to end (file read, every rule on every record, kept records
/// gathered, report built; no output written) on --mb MB (default 100; MB = 10⁶ bytes of file) of the JSON Lines the
/// dedup workload writes from LLaMA-Factory's alpaca_en/zh demo answers, in MB/s.
/// </summary>
public sealed class CleanWorkload : IWorkload
{
    public string Name => "clean";

    public string Description => "data clean: MB/s of the default recipe on --mb MB of alpaca-shaped JSONL";

    public int DefaultSeq => 0;

    public void Run(BenchContext context)
    {
        int megabytes = int.Parse(context.Option("mb", "100"), CultureInfo.InvariantCulture);
        string dir = Directory.CreateTempSubdirectory("sharptune-bench-clean-").FullName;
        try
        {
            string file = Path.Combine(dir, "clean.jsonl");
            DedupWorkload.WriteExactInput(file, DedupWorkload.LoadAnswers(), megabytes * 1_000_000L);
            double fileMegabytes = new FileInfo(file).Length / 1e6;
            var recipe = CleaningRecipe.Default();
            int kept = 0;
            double seconds = context.MedianSeconds(() => { kept = DatasetCleaner.Run(file, recipe, new StepTargets(Path.Combine(dir, "cleaned.jsonl"), null)).Written; });
            context.Report("file", fileMegabytes, "MB");
            context.Report("kept", kept, "records");
            context.Report("throughput", fileMegabytes / seconds, "MB/s");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
