namespace SharpTune.Distributed;

/// <summary>
/// The processes of one data-parallel job, as <c>mpirun -np N sharptune train CONFIG</c> starts them: this process's
/// rank, the world size, and the collectives the trainer needs over MPI_COMM_WORLD (Open MPI, see
/// <see cref="OpenMpi"/>). MPI is loaded only when mpirun launched the process (Open MPI sets
/// <see cref="SizeVariable"/>), so a plain run never touches libmpi. Calls come from the training thread only.
/// </summary>
public sealed unsafe class ProcessGroup : IDisposable
{
    public const string RankVariable = "OMPI_COMM_WORLD_RANK";
    public const string SizeVariable = "OMPI_COMM_WORLD_SIZE";

    private readonly OpenMpi _mpi;

    /// <summary>The job this process joined with <see cref="JoinLaunchedJob"/>; null in a process mpirun did not start.</summary>
    public static ProcessGroup? Current { get; private set; }

    /// <summary>Whether this process writes the run's files (checkpoints, logs, plots, results): rank 0, or a plain run.</summary>
    public static bool WritesOutputs => Current is not { Rank: > 0 };

    public int Rank { get; }
    public int Size { get; }

    private ProcessGroup(OpenMpi mpi)
    {
        _mpi = mpi;
        Rank = mpi.Rank();
        Size = mpi.Size();
    }

    /// <summary>
    /// Initialises MPI and makes the job <see cref="Current"/> when Open MPI's mpirun launched this process; returns
    /// null, loading nothing, otherwise. MPICH's launcher (it sets PMI_SIZE) is refused with what to use instead.
    /// </summary>
    public static ProcessGroup? JoinLaunchedJob()
    {
        if (Current is not null) throw new InvalidOperationException("this process already joined its MPI job");
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(SizeVariable)))
        {
            if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("PMI_SIZE")))
                throw new InvalidOperationException("launched by MPICH's mpiexec (PMI_SIZE is set); SharpTune's data-parallel training runs under Open MPI's mpirun only");
            return null;
        }
        var mpi = OpenMpi.Load();
        mpi.Initialize();
        return Current = new ProcessGroup(mpi);
    }

    /// <summary>Replaces each value with its sum over the ranks (MPI_Allreduce, blocking).</summary>
    public void SumInPlace(Span<double> values)
    {
        fixed (double* p = values) _mpi.AllreduceInPlace((nint)p, values.Length, _mpi.Double, _mpi.Sum);
    }

    /// <summary>The mean of <paramref name="value"/> over the ranks.</summary>
    public double Mean(double value)
    {
        Span<double> one = [value];
        SumInPlace(one);
        return one[0] / Size;
    }

    /// <summary>
    /// Starts summing the first <paramref name="count"/> values of <paramref name="buffer"/> over the ranks in place
    /// (MPI_Iallreduce); the buffer must be pinned (<see cref="GC.AllocateArray{T}(int, bool)"/>) and untouched until
    /// <see cref="WaitAll"/> returns.
    /// </summary>
    public PendingSum StartSum(float[] buffer, int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, buffer.Length);
        // The pointer outlives the fixed block: the caller's buffer is pinned for good.
        fixed (float* p = buffer) return new PendingSum(_mpi.IallreduceInPlace((nint)p, count, _mpi.Float, _mpi.Sum));
    }

    /// <summary>Waits for the sums started by <see cref="StartSum"/>.</summary>
    public void WaitAll(IReadOnlyList<PendingSum> sums)
    {
        Span<nint> requests = sums.Count <= 64 ? stackalloc nint[sums.Count] : new nint[sums.Count];
        for (int i = 0; i < sums.Count; i++) requests[i] = sums[i].Request;
        _mpi.WaitAll(requests);
    }

    /// <summary>Every rank's <paramref name="words"/> (the same length on each), by rank.</summary>
    public ulong[][] GatherAll(ulong[] words)
    {
        var all = new ulong[Size * words.Length];
        fixed (ulong* send = words)
        fixed (ulong* receive = all)
            _mpi.Allgather((nint)send, words.Length, _mpi.UInt64, (nint)receive);
        return Enumerable.Range(0, Size).Select(r => all.AsSpan(r * words.Length, words.Length).ToArray()).ToArray();
    }

    /// <summary>Returns once every rank has called it.</summary>
    public void Barrier() => _mpi.Barrier();

    /// <summary>
    /// Stops every rank of the job: the message goes to this rank's stderr naming the rank, then MPI_Abort makes
    /// mpirun kill the others, wherever they wait. Does not return.
    /// </summary>
    public void Abort(string message, int exitCode)
    {
        Console.Error.WriteLine($"error: rank {Rank} of {Size}: {message}");
        Console.Error.Flush();
        _mpi.Abort(exitCode);
        Environment.Exit(exitCode);
    }

    /// <summary>MPI_Finalize: the job ends normally for this rank.</summary>
    public void Dispose()
    {
        if (Current != this) return;
        Current = null;
        _mpi.FinalizeMpi();
    }
}

/// <summary>A sum started by <see cref="ProcessGroup.StartSum"/>, finished by <see cref="ProcessGroup.WaitAll"/>.</summary>
public readonly record struct PendingSum(nint Request);
