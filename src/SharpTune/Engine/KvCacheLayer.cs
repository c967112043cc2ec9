namespace SharpTune.Engine;

/// <summary>
/// Keys and values of one decoder layer for every sequence of a batch, preallocated for Capacity positions:
/// laid out [batch × kvHeads × Capacity × headDim] so one head's keys are contiguous for the attention loop.
/// </summary>
public sealed class KvCacheLayer
{
    public int Batch { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public int Capacity { get; }
    public float[] Keys { get; }
    public float[] Values { get; }

    /// <summary>Positions filled so far (the same for every sequence of the batch).</summary>
    public int Length { get; set; }

    public KvCacheLayer(int batch, int kvHeads, int headDim, int capacity)
    {
        Batch = batch;
        KvHeads = kvHeads;
        HeadDim = headDim;
        Capacity = capacity;
        long size = (long)batch * kvHeads * capacity * headDim;
        if (size > Array.MaxLength) throw new ArgumentException($"KV cache of {size} floats per layer is too large; lower the maximum length");
        Keys = new float[size];
        Values = new float[size];
    }

    public int Offset(int b, int head, int position) => ((b * KvHeads + head) * Capacity + position) * HeadDim;

    /// <summary>
    /// Stores the new tokens' keys and values (k, v: [batch·newTokens × kvHeads·headDim]) at positions Length.. and
    /// advances Length.
    /// </summary>
    public void Append(Tensor k, Tensor v, int newTokens)
    {
        if (Length + newTokens > Capacity)
            throw new InvalidOperationException($"KV cache full: {Length} + {newTokens} positions exceed its capacity of {Capacity}");
        int width = KvHeads * HeadDim;
        for (int b = 0; b < Batch; b++)
            for (int t = 0; t < newTokens; t++)
            {
                int row = (b * newTokens + t) * width;
                for (int h = 0; h < KvHeads; h++)
                {
                    int dst = Offset(b, h, Length + t);
                    Array.Copy(k.Data, row + h * HeadDim, Keys, dst, HeadDim);
                    Array.Copy(v.Data, row + h * HeadDim, Values, dst, HeadDim);
                }
            }
        Length += newTokens;
    }
}
