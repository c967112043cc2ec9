namespace SharpTune.Engine;

/// <summary>
/// Keys and values of one decoder layer for every sequence of a batch, preallocated for Capacity positions by the
/// backend (<see cref="IComputeBackend.AllocateCache"/>, filled by <see cref="IComputeBackend.AppendToCache"/>): laid
/// out [batch × kvHeads × Capacity × headDim] so one head's keys are contiguous for the attention loop.
/// </summary>
public sealed class KvCacheLayer
{
    public int Batch { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public int Capacity { get; }
    public Tensor Keys { get; }
    public Tensor Values { get; }

    /// <summary>Positions filled so far (the same for every sequence of the batch).</summary>
    public int Length { get; set; }

    /// <summary>A layer over keys and values a backend allocated, each [batch·kvHeads·capacity × headDim].</summary>
    public KvCacheLayer(int batch, int kvHeads, int headDim, int capacity, Tensor keys, Tensor values)
    {
        Batch = batch;
        KvHeads = kvHeads;
        HeadDim = headDim;
        Capacity = capacity;
        Keys = keys;
        Values = values;
    }

    public int Offset(int b, int head, int position) => ((b * KvHeads + head) * Capacity + position) * HeadDim;
}
