namespace SharpTune.Engine;

/// <summary>
/// Precomputed rotary-embedding inverse frequencies for one head size, in the "rotate_half" convention
/// Hugging Face uses for Qwen2/Llama: inv_freq[i] = 1 / theta^(2i/d), angle = position · inv_freq[i].
/// </summary>
public sealed class RopeTable
{
    /// <summary>
    /// Positions beyond this are rotated with freshly computed angles instead of growing the table further
    /// (65536 positions × head size 128 is 32 MiB, so a long context never costs more than that).
    /// </summary>
    private const int MaxCachedPositions = 1 << 16;

    private readonly object _growLock = new();
    private float[] _cosSin = [];
    public int HeadDim { get; }
    public float[] InverseFrequencies { get; }

    public RopeTable(int headDim, float[] inverseFrequencies)
    {
        if (headDim % 2 != 0) throw new ArgumentException($"rotary embedding needs an even head size, got {headDim}");
        if (inverseFrequencies.Length != headDim / 2)
            throw new ArgumentException($"expected {headDim / 2} inverse frequencies, got {inverseFrequencies.Length}");
        HeadDim = headDim;
        InverseFrequencies = inverseFrequencies;
    }

    /// <summary>
    /// cos and sin of position·inv_freq for the first half of a head. The angle is formed in float32, as torch
    /// does (inv_freq float32 × position float32), so results match the reference bit for bit in the angle.
    /// </summary>
    public void Angles(int position, Span<float> cos, Span<float> sin)
    {
        for (int i = 0; i < InverseFrequencies.Length; i++)
        {
            float angle = position * InverseFrequencies[i];
            cos[i] = MathF.Cos(angle);
            sin[i] = MathF.Sin(angle);
        }
    }

    /// <summary>
    /// cos then sin of the angles of <paramref name="position"/> (HeadDim/2 values each), from a table grown on
    /// demand: every layer rotates queries and keys by the same angles, so each position's cos/sin is computed once
    /// instead of twice per layer. False for a position the table does not hold (negative or very large); use
    /// <see cref="Angles"/> then.
    /// </summary>
    public bool TryGetCosSin(int position, out ReadOnlySpan<float> cosSin)
    {
        cosSin = default;
        if ((uint)position >= MaxCachedPositions) return false;
        float[] table = _cosSin;
        if ((long)(position + 1) * HeadDim > table.Length) table = Grow(position);
        cosSin = table.AsSpan(position * HeadDim, HeadDim);
        return true;
    }

    private float[] Grow(int position)
    {
        lock (_growLock)
        {
            float[] old = _cosSin;
            int cached = old.Length / HeadDim;
            if (position < cached) return old;
            int capacity = Math.Min(MaxCachedPositions, Math.Max(position + 1, Math.Max(64, 2 * cached)));
            var table = new float[(long)capacity * HeadDim];
            old.CopyTo(table, 0);
            int half = HeadDim / 2;
            for (int p = cached; p < capacity; p++)
                Angles(p, table.AsSpan(p * HeadDim, half), table.AsSpan(p * HeadDim + half, half));
            // Readers take the array reference once, so publishing the filled table is enough synchronisation.
            Volatile.Write(ref _cosSin, table);
            return table;
        }
    }
}
