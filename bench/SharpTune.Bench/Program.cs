using SharpTune.Bench;

// Usage: SharpTune.Bench WORKLOAD [--option value ...] [--json]
//        SharpTune.Bench --list
var options = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
string? workloadName = null;
bool json = false, list = false;
for (int i = 0; i < args.Length; i++)
{
    string arg = args[i];
    if (arg == "--json") json = true;
    else if (arg is "--list" or "-h" or "--help") list = true;
    else if (arg.StartsWith("--", StringComparison.Ordinal))
    {
        // A bare switch (no value, or another option next) means "true", e.g. --gradient-checkpointing.
        bool hasValue = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal);
        options[arg[2..]] = hasValue ? args[++i] : "true";
    }
    else if (workloadName is null) workloadName = arg;
    else return Fail($"unexpected argument '{arg}'");
}

if (list || workloadName is null)
{
    Console.WriteLine("usage: SharpTune.Bench WORKLOAD [--preset P] [--seq N] [--runs N] [--option value ...] [--json]");
    Console.WriteLine("workloads:");
    foreach (var w in Workloads.All) Console.WriteLine($"  {w.Name,-12} {w.Description}");
    return workloadName is null && !list ? 2 : 0;
}

var workload = Workloads.All.FirstOrDefault(w => string.Equals(w.Name, workloadName, StringComparison.OrdinalIgnoreCase));
if (workload is null) return Fail($"unknown workload '{workloadName}'; known: {string.Join(", ", Workloads.All.Select(w => w.Name))}");

var context = new BenchContext(workload.Name, options, json, workload.DefaultSeq);
if (!json) Console.WriteLine($"# {workload.Name}: {workload.Description} (preset {context.Preset}, seq {context.Seq})");
workload.Run(context);
context.Report("peak_rss", BenchContext.PeakRssMiB(), "MiB");
return 0;

static int Fail(string message)
{
    Console.Error.WriteLine(message);
    return 2;
}
