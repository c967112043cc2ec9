using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace SharpTune.Engine;

/// <summary>
/// Thread count used by the compute engine: <c>SHARPTUNE_NUM_THREADS</c> when set to a positive integer,
/// otherwise <see cref="Environment.ProcessorCount"/>, divided among the ranks an Open MPI job runs on this machine
/// (<c>OMPI_COMM_WORLD_LOCAL_SIZE</c>).
/// </summary>
public static class EngineThreads
{
    public static int Count { get; } = Resolve();

    private static int Resolve()
    {
        string? value = Environment.GetEnvironmentVariable("SHARPTUNE_NUM_THREADS");
        if (!string.IsNullOrWhiteSpace(value))
        {
            if (int.TryParse(value, out int n) && n > 0) return n;
            throw new InvalidOperationException($"SHARPTUNE_NUM_THREADS must be a positive integer, not '{value}'");
        }
        // Ranks of an Open MPI job on one machine share its cores (each sees them all under --bind-to none, its own
        // core under mpirun's default binding of up to two ranks).
        if (int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_SIZE"), out int ranksHere) && ranksHere > 1)
            return Math.Max(1, Environment.ProcessorCount / ranksHere);
        return Math.Max(1, Environment.ProcessorCount);
    }
}

/// <summary>
/// A persistent fork-join pool: <c>threads - 1</c> background workers plus the calling thread.
/// Tasks are handed out dynamically, so a core that is busy with something else simply takes fewer of them.
/// A call made from inside a pool task, or while another thread owns the pool, runs serially on the caller —
/// nested or concurrent GEMMs therefore never oversubscribe the machine.
/// </summary>
/// <remarks>
/// A decode step makes ~200 calls of tens of microseconds each, so the hand-off itself must cost far less than a
/// kernel wake-up: an idle worker spins on the job counter for <see cref="SpinTicks"/> before it sleeps, and the
/// caller spins for the workers' last tasks before it blocks. Waking a sleeping worker through the kernel on every
/// call cost ~4 ms per token on the development machine (a fifth of a 0.5B model's decode step).
/// </remarks>
public sealed class GemmThreadPool
{
    private static readonly Lazy<GemmThreadPool> s_shared = new(() => new GemmThreadPool(EngineThreads.Count));

    /// <summary>How long an idle thread spins before it blocks: ~100 µs, longer than the gaps inside a decode step.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000;

    public static GemmThreadPool Shared => s_shared.Value;

    [ThreadStatic] private static bool t_insideTask;

    private readonly object _gate = new();
    private readonly object _sleep = new();
    private readonly ManualResetEventSlim _done = new(false);
    private Action<int>? _body;
    private int _taskCount;
    private int _nextTask;
    private int _pendingWorkers;
    private long _generation;
    private int _sleepers;
    private ExceptionDispatchInfo? _error;

    public int Threads { get; }

    public GemmThreadPool(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        Threads = threads;
        for (int i = 1; i < threads; i++)
        {
            var worker = new Thread(WorkerLoop) { IsBackground = true, Name = $"sharptune-gemm-{i}" };
            worker.Start();
        }
    }

    /// <summary>
    /// Runs body(start, end) over [0, count) in contiguous pieces of at least <paramref name="minimumPerTask"/> items
    /// (the whole range on the calling thread when it is too small to split), up to four pieces per thread so that
    /// uneven pieces still finish together.
    /// </summary>
    public void ForRanges(int count, int minimumPerTask, Action<int, int> body)
    {
        if (count <= 0) return;
        int tasks = Math.Clamp(count / Math.Max(1, minimumPerTask), 1, 4 * Threads);
        if (tasks == 1)
        {
            body(0, count);
            return;
        }
        For(tasks, t =>
        {
            int start = (int)((long)count * t / tasks), end = (int)((long)count * (t + 1) / tasks);
            if (end > start) body(start, end);
        });
    }

    /// <summary>Runs <paramref name="body"/>(0 .. taskCount-1), each exactly once, and returns when all are done.</summary>
    public void For(int taskCount, Action<int> body)
    {
        if (taskCount <= 0) return;
        if (taskCount == 1 || Threads == 1 || t_insideTask || !Monitor.TryEnter(_gate))
        {
            RunSerially(taskCount, body);
            return;
        }
        try
        {
            _body = body;
            _taskCount = taskCount;
            _nextTask = 0;
            _error = null;
            // Every worker checks in for every job (one with no task left just counts down), so no worker can miss a
            // generation: the next job is published only after all of them have finished this one.
            _pendingWorkers = Threads - 1;
            _done.Reset();
            // Interlocked on both sides (here and in Sleep) is a full fence: either this call sees the sleeper and
            // wakes it, or the sleeper sees the new generation before it waits.
            Interlocked.Increment(ref _generation);
            if (Volatile.Read(ref _sleepers) > 0)
                lock (_sleep) Monitor.PulseAll(_sleep);
            t_insideTask = true;
            try { RunTasks(); }
            finally { t_insideTask = false; }
            WaitForWorkers();
            _body = null;
            _error?.Throw();
        }
        finally
        {
            Monitor.Exit(_gate);
        }
    }

    private void WaitForWorkers()
    {
        long deadline = Stopwatch.GetTimestamp() + SpinTicks;
        var spinner = new SpinWait();
        while (Volatile.Read(ref _pendingWorkers) != 0 && Stopwatch.GetTimestamp() <= deadline)
            spinner.SpinOnce(sleep1Threshold: -1);
        // Always wait for the event, even when the count has reached 0: the last worker sets it just after counting
        // down, and a Set landing after the next call's Reset would let that call return before its workers finish.
        _done.Wait();
    }

    private static void RunSerially(int taskCount, Action<int> body)
    {
        bool outer = !t_insideTask;
        t_insideTask = true;
        try
        {
            for (int i = 0; i < taskCount; i++) body(i);
        }
        finally
        {
            if (outer) t_insideTask = false;
        }
    }

    private void WorkerLoop()
    {
        t_insideTask = true;
        long seen = 0;
        while (true)
        {
            seen = AwaitJob(seen);
            RunTasks();
            if (Interlocked.Decrement(ref _pendingWorkers) == 0) _done.Set();
        }
    }

    /// <summary>Waits until a job newer than <paramref name="seen"/> is published (spinning first) and returns its generation.</summary>
    private long AwaitJob(long seen)
    {
        long deadline = Stopwatch.GetTimestamp() + SpinTicks;
        var spinner = new SpinWait();
        long current;
        while ((current = Volatile.Read(ref _generation)) == seen)
        {
            if (Stopwatch.GetTimestamp() > deadline) return Sleep(seen);
            spinner.SpinOnce(sleep1Threshold: -1);
        }
        return current;
    }

    private long Sleep(long seen)
    {
        lock (_sleep)
        {
            Interlocked.Increment(ref _sleepers);
            long current;
            while ((current = Interlocked.Read(ref _generation)) == seen) Monitor.Wait(_sleep);
            Interlocked.Decrement(ref _sleepers);
            return current;
        }
    }

    private void RunTasks()
    {
        Action<int> body = _body!;
        int i;
        while ((i = Interlocked.Increment(ref _nextTask) - 1) < _taskCount)
        {
            try
            {
                body(i);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null);
            }
        }
    }
}
