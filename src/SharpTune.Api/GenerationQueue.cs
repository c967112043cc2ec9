using System.Threading.Channels;

namespace SharpTune.Api;

/// <summary>
/// Serves generations one at a time, first come first served, on one worker thread: the model's forward pass uses
/// every core already, so running requests side by side would only split the same compute, and a FIFO queue lets
/// no request starve. Each job has its own cache and random generator, so a reply does not depend on what else was
/// queued. A full queue refuses new work instead of growing without bound.
/// </summary>
public sealed class GenerationQueue : IDisposable
{
    private readonly Channel<GenerationJob> _jobs;
    private readonly Thread _worker;

    public GenerationQueue(int capacity)
    {
        _jobs = Channel.CreateBounded<GenerationJob>(new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _worker = new Thread(Work) { Name = "sharptune-generation", IsBackground = true };
        _worker.Start();
    }

    private long _completed, _timedOut, _cancelled, _failed;
    private volatile GenerationJob? _running;

    /// <summary>
    /// Generations that ran to the end (a stop, the token limit), were cut by the time limit, were cancelled, or
    /// failed; shown by /health.
    /// </summary>
    public (long Completed, long TimedOut, long Cancelled, long Failed) Counts =>
        (Interlocked.Read(ref _completed), Interlocked.Read(ref _timedOut), Interlocked.Read(ref _cancelled), Interlocked.Read(ref _failed));

    /// <summary>The job the worker is running, if any.</summary>
    public GenerationJob? Running => _running;

    /// <summary>How many jobs wait behind the running one.</summary>
    public int Waiting => _jobs.Reader.Count;

    /// <summary>Queues a job; false when the queue is full or closed.</summary>
    public bool TryEnqueue(GenerationJob job) => _jobs.Writer.TryWrite(job);

    private void Work()
    {
        var reader = _jobs.Reader;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            while (reader.TryRead(out var job))
            {
                _running = job;
                job.Run();
                _running = null;
                switch (job.Outcome.Status)
                {
                    case TaskStatus.RanToCompletion when job.Outcome.Result.TimedOut: Interlocked.Increment(ref _timedOut); break;
                    case TaskStatus.RanToCompletion: Interlocked.Increment(ref _completed); break;
                    case TaskStatus.Canceled: Interlocked.Increment(ref _cancelled); break;
                    default: Interlocked.Increment(ref _failed); break;
                }
            }
    }

    /// <summary>Stops taking jobs, lets the worker finish what is queued (cancelled jobs end at once) and waits for it.</summary>
    public void Dispose()
    {
        _jobs.Writer.TryComplete();
        _worker.Join();
    }
}
