using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SharpTune.Data;
using SharpTune.Distributed;
using SharpTune.FineTuning;
using SharpTune.Foundation;
using SharpTune.Hparams;
using SharpTune.Training.Optim;
using SharpTune.Training.Trainer;

namespace SharpTune.Bench;

/// <summary>
/// Data-parallel scaling (docs/distributed.md): the same LoRA optimizer steps of a global batch of 2 rows of --seq
/// tokens on a generated --preset model, run as 2 ranks × 1 engine thread under <c>mpirun</c> (a row per rank, the
/// gradients averaged by the trainer's <see cref="GradientAverager"/>) and as 1 process × 2 threads (the 2 rows
/// accumulated); reports both tokens/s, their ratio, the time a step spends averaging its gradients (waiting for the
/// slower rank included), and the all-reduce bandwidth of a 25 MB bucket between the 2 ranks (bytes summed per second, and the bus bandwidth 2(N−1)/N of that, as nccl-tests reports it). The workload
/// starts itself as the two workers (<c>--worker true</c>), so it needs Open MPI's mpirun on PATH.
/// </summary>
public sealed class DdpWorkload : IWorkload
{
    private const int Ranks = 2;

    public string Name => "ddp";

    public string Description => "data-parallel scaling: 2 ranks x 1 thread (mpirun) vs 1 process x 2 threads, LoRA steps of 2 rows; all-reduce bandwidth";

    public int DefaultSeq => 128;

    public void Run(BenchContext context)
    {
        if (bool.Parse(context.Option("worker", "false")))
        {
            RunWorker(context);
            return;
        }
        string bench = Environment.ProcessPath ?? throw new InvalidOperationException("the bench's own path is unknown");
        string[] workerArgs = ["ddp", "--worker", "true", "--preset", context.Preset, "--seq", context.Seq.ToString(CultureInfo.InvariantCulture),
            "--runs", context.Runs.ToString(CultureInfo.InvariantCulture), "--json"];
        string[] mpirun = ["mpirun", "-np", Ranks.ToString(CultureInfo.InvariantCulture), "--bind-to", "none", "--oversubscribe",
            .. Environment.UserName == "root" ? ["--allow-run-as-root"] : Array.Empty<string>(), bench, .. workerArgs];
        var ranks = Worker(mpirun, threads: 1);
        var alone = Worker([bench, .. workerArgs], threads: Ranks);

        context.Report("ddp_2_ranks_x_1_thread_tokens_per_s", ranks["tokens_per_s"], "tokens/s");
        context.Report("single_1_process_x_2_threads_tokens_per_s", alone["tokens_per_s"], "tokens/s");
        context.Report("ddp_speedup_over_threads", ranks["tokens_per_s"] / alone["tokens_per_s"], "x");
        context.Report("ddp_gradient_average_seconds_per_step", ranks["gradient_average_seconds"], "s");
        context.Report("allreduce_25MB_algorithm_bandwidth", ranks["allreduce_algorithm_GBps"], "GB/s");
        context.Report("allreduce_25MB_bus_bandwidth", ranks["allreduce_algorithm_GBps"] * 2 * (Ranks - 1) / Ranks, "GB/s");
    }

    /// <summary>Runs a worker command with SHARPTUNE_NUM_THREADS=<paramref name="threads"/>; its rank 0's metrics by name.</summary>
    private static Dictionary<string, double> Worker(string[] command, int threads)
    {
        var start = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in command.Skip(1)) start.ArgumentList.Add(arg);
        start.Environment["SHARPTUNE_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {command[0]}");
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{string.Join(' ', command)} exited with {process.ExitCode}: {stderr.Result}");
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (string line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // .NET may put a terminal's keypad-mode escape before the first line.
            int brace = line.IndexOf('{');
            if (brace < 0) continue;
            using var json = JsonDocument.Parse(line[brace..]);
            metrics.TryAdd(json.RootElement.GetProperty("metric").GetString()!, json.RootElement.GetProperty("value").GetDouble());
        }
        return metrics;
    }

    /// <summary>One worker: under mpirun a rank training its row; alone, the process accumulating both rows.</summary>
    private static void RunWorker(BenchContext context)
    {
        using var world = ProcessGroup.JoinLaunchedJob();
        if (world is not null && world.Size != Ranks) throw new ArgumentException($"the ddp worker runs on {Ranks} ranks, not {world.Size}");
        string folder = BenchModels.Ensure(context.Preset, quiet: true);
        var args = new FinetuningArguments { FinetuningType = FinetuningType.Lora, LoraRank = 16, LoraTarget = ["all"] };
        using var model = TrainableModels.Create(folder, args, false, new SeededRandom(0), [], null, false);
        using var optimizer = OptimizerNames.Create(OptimizerNames.AdamWTorch, model.TrainableParameters, new TrainingArguments());
        var averager = world is null ? null : new GradientAverager(world, model.TrainableParameters);
        int vocab = SharpTune.Model.ModelPreset.Get(context.Preset).VocabSize;
        var random = new Random(world?.Rank ?? 0);
        TrainingBatch Row()
        {
            int[] ids = Enumerable.Range(0, context.Seq).Select(_ => random.Next(vocab)).ToArray();
            return new TrainingBatch(1, context.Seq, ids, Enumerable.Repeat(1, context.Seq).ToArray(), (int[])ids.Clone());
        }
        var rows = world is null ? Enumerable.Range(0, Ranks).Select(_ => Row()).ToArray() : [Row()];
        var dropout = new SeededRandom(1);
        double allreduceSeconds = 0;
        double seconds = context.MedianSeconds(() =>
        {
            long start = Stopwatch.GetTimestamp();
            foreach (var p in model.TrainableParameters) p.ZeroGrad();
            foreach (var row in rows) model.ForwardBackward(row, 1f / Ranks, dropout);
            long reduceStart = Stopwatch.GetTimestamp();
            averager?.Average();
            allreduceSeconds = Stopwatch.GetElapsedTime(reduceStart).TotalSeconds;
            GradientClipping.Clip(model.TrainableParameters, 1.0);
            optimizer.Update(1e-4);
            return Stopwatch.GetElapsedTime(start).TotalSeconds;
        });
        if (world is { Rank: > 0 })
        {
            Bandwidth(context, world);
            return;
        }
        context.Report("tokens_per_s", Ranks * context.Seq / seconds, "tokens/s");
        if (world is null) return;
        context.Report("gradient_average_seconds", allreduceSeconds, "s");
        context.Report("allreduce_algorithm_GBps", Bandwidth(context, world), "GB/s");
    }

    /// <summary>Bytes of a 25 MB float bucket summed over the ranks per second (every rank runs the same calls).</summary>
    private static double Bandwidth(BenchContext context, ProcessGroup world)
    {
        int count = (int)(GradientAverager.BucketBytes / sizeof(float));
        var bucket = GC.AllocateArray<float>(count, pinned: true);
        double seconds = context.MedianSeconds(() => world.WaitAll([world.StartSum(bucket, count)]));
        return GradientAverager.BucketBytes / seconds / 1e9;
    }
}
