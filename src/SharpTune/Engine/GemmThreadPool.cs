using System.Runtime.ExceptionServices;

namespace SharpTune.Engine;

/// <summary>
/// Thread count used by the compute engine: <c>SHARPTUNE_NUM_THREADS</c> when set to a positive integer,
/// otherwise <see cref="Environment.ProcessorCount"/>.
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
        return Math.Max(1, Environment.ProcessorCount);
    }
}

/// <summary>
/// A persistent fork-join pool: <c>threads - 1</c> background workers plus the calling thread.
/// Tasks are handed out dynamically, so a core that is busy with something else simply takes fewer of them.
/// A call made from inside a pool task, or while another thread owns the pool, runs serially on the caller —
/// nested or concurrent GEMMs therefore never oversubscribe the machine.
/// </summary>
public sealed class GemmThreadPool
{
    private static readonly Lazy<GemmThreadPool> s_shared = new(() => new GemmThreadPool(EngineThreads.Count));

    public static GemmThreadPool Shared => s_shared.Value;

    [ThreadStatic] private static bool t_insideTask;

    private readonly object _gate = new();
    private readonly SemaphoreSlim _start = new(0);
    private readonly ManualResetEventSlim _done = new(false);
    private Action<int>? _body;
    private int _taskCount;
    private int _nextTask;
    private int _pendingWorkers;
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
            int helpers = Math.Min(Threads - 1, taskCount - 1);
            _pendingWorkers = helpers;
            _done.Reset();
            _start.Release(helpers);
            t_insideTask = true;
            try { RunTasks(); }
            finally { t_insideTask = false; }
            _done.Wait();
            _body = null;
            _error?.Throw();
        }
        finally
        {
            Monitor.Exit(_gate);
        }
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
        while (true)
        {
            _start.Wait();
            RunTasks();
            if (Interlocked.Decrement(ref _pendingWorkers) == 0) _done.Set();
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
