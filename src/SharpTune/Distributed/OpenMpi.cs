using System.Runtime.InteropServices;

namespace SharpTune.Distributed;

/// <summary>
/// The few calls of Open MPI's C API that data-parallel training makes, bound at run time from <c>libmpi.so.40</c>.
/// Open MPI's handles are pointers: a predefined one (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) is the address of an
/// exported object (<c>ompi_mpi_comm_world</c>, <c>ompi_mpi_float</c>, <c>ompi_mpi_op_sum</c>), taken with
/// <see cref="NativeLibrary.GetExport"/>. MPICH's handles are integers with another ABI, so MPICH is refused by name
/// rather than called with the wrong handles.
/// </summary>
internal sealed unsafe class OpenMpi
{
    private const string LibraryName = "libmpi.so.40";
    /// <summary>MPI_IN_PLACE in Open MPI's mpi.h: <c>(void *) 1</c>.</summary>
    public static readonly nint InPlace = 1;
    /// <summary>MPI_THREAD_FUNNELED: only the thread that initialised MPI calls it (the training thread).</summary>
    private const int ThreadFunneled = 1;

    public nint CommWorld { get; }
    public nint Float { get; }
    public nint Double { get; }
    public nint UInt64 { get; }
    public nint Sum { get; }

    private readonly delegate* unmanaged<int*, nint, int, int*, int> _initThread;
    private readonly delegate* unmanaged<int> _finalize;
    private readonly delegate* unmanaged<nint, int*, int> _commRank;
    private readonly delegate* unmanaged<nint, int*, int> _commSize;
    private readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, int> _allreduce;
    private readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, nint*, int> _iallreduce;
    private readonly delegate* unmanaged<int, nint*, nint, int> _waitall;
    private readonly delegate* unmanaged<nint, int, nint, nint, int, nint, nint, int> _allgather;
    private readonly delegate* unmanaged<nint, int> _barrier;
    private readonly delegate* unmanaged<nint, int, int> _abort;

    private OpenMpi(nint library)
    {
        nint Export(string name) => NativeLibrary.TryGetExport(library, name, out nint address)
            ? address
            : throw new InvalidOperationException($"{LibraryName} lacks {name}: it is not Open MPI 4 or later (install openmpi-bin and libopenmpi-dev)");
        CommWorld = Export("ompi_mpi_comm_world");
        Float = Export("ompi_mpi_float");
        Double = Export("ompi_mpi_double");
        UInt64 = Export("ompi_mpi_uint64_t");
        Sum = Export("ompi_mpi_op_sum");
        _initThread = (delegate* unmanaged<int*, nint, int, int*, int>)Export("MPI_Init_thread");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        _commRank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank");
        _commSize = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size");
        _allreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, int>)Export("MPI_Allreduce");
        _iallreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, nint*, int>)Export("MPI_Iallreduce");
        _waitall = (delegate* unmanaged<int, nint*, nint, int>)Export("MPI_Waitall");
        _allgather = (delegate* unmanaged<nint, int, nint, nint, int, nint, nint, int>)Export("MPI_Allgather");
        _barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier");
        _abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
    }

    /// <summary>Loads Open MPI; an MPICH installation or none at all is an error that says what to install.</summary>
    public static OpenMpi Load()
    {
        if (NativeLibrary.TryLoad(LibraryName, out nint library)) return new OpenMpi(library);
        if (NativeLibrary.TryLoad("libmpi.so.12", out _))
            throw new InvalidOperationException($"only MPICH's libmpi.so.12 is installed; SharpTune's data-parallel training needs Open MPI ({LibraryName}: Debian's openmpi-bin and libopenmpi-dev) and its mpirun");
        throw new InvalidOperationException($"launched by mpirun, but Open MPI's {LibraryName} cannot be loaded (install Debian's openmpi-bin and libopenmpi-dev)");
    }

    /// <summary>MPI_Init_thread asking for MPI_THREAD_FUNNELED; MPI is called from the training thread only.</summary>
    public void Initialize()
    {
        int argc = 0, provided;
        Check(_initThread(&argc, 0, ThreadFunneled, &provided), "MPI_Init_thread");
    }

    public int Rank()
    {
        int rank;
        Check(_commRank(CommWorld, &rank), "MPI_Comm_rank");
        return rank;
    }

    public int Size()
    {
        int size;
        Check(_commSize(CommWorld, &size), "MPI_Comm_size");
        return size;
    }

    public void AllreduceInPlace(nint buffer, int count, nint type, nint op) =>
        Check(_allreduce(InPlace, buffer, count, type, op, CommWorld), "MPI_Allreduce");

    public nint IallreduceInPlace(nint buffer, int count, nint type, nint op)
    {
        nint request;
        Check(_iallreduce(InPlace, buffer, count, type, op, CommWorld, &request), "MPI_Iallreduce");
        return request;
    }

    /// <summary>MPI_Waitall with MPI_STATUSES_IGNORE (Open MPI: a null pointer).</summary>
    public void WaitAll(Span<nint> requests)
    {
        fixed (nint* r = requests) Check(_waitall(requests.Length, r, 0), "MPI_Waitall");
    }

    public void Allgather(nint send, int count, nint type, nint receive) =>
        Check(_allgather(send, count, type, receive, count, type, CommWorld), "MPI_Allgather");

    public void Barrier() => Check(_barrier(CommWorld), "MPI_Barrier");

    public void Abort(int code) => _abort(CommWorld, code);

    public void FinalizeMpi() => Check(_finalize(), "MPI_Finalize");

    /// <summary>
    /// MPI_COMM_WORLD's default error handler (MPI_ERRORS_ARE_FATAL) aborts the job before a call returns an error;
    /// this catches what returns anyway.
    /// </summary>
    private static void Check(int code, string call)
    {
        if (code != 0) throw new InvalidOperationException($"{call} failed with MPI error code {code}");
    }
}
