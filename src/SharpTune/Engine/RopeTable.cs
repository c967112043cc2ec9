namespace SharpTune.Engine;

/// <summary>
/// Which dimensions RoPE rotates together: the two halves of the rotated part of a head (transformers'
/// rotate_half, Qwen and Llama), or neighbouring pairs (2i, 2i+1) as ChatGLM and GPT-J rotate them.
/// </summary>
public enum RopeStyle
{
    RotateHalf,
    InterleavedPairs,
}

/// <summary>
/// Precomputed rotary-embedding inverse frequencies for one head size: angle = position · inv_freq[i] turns the i-th
/// pair of the first <see cref="RotaryDim"/> dimensions of each head (pairs as <see cref="Style"/> says); the other
/// dimensions pass unchanged (ChatGLM rotates half of each head, Qwen and Llama all of it).
/// </summary>
public sealed class RopeTable
{
    /// <summary>
    /// Positions beyond this are rotated with freshly computed angles instead of growing the table further
    /// (65536 positions × 128 rotated dimensions is 32 MiB, so a long context never costs more than that).
    /// </summary>
    private const int MaxCachedPositions = 1 << 16;

    private readonly object _growLock = new();
    private float[] _cosSin = [];
    /// <summary>The size of a head, the stride between the heads of a row.</summary>
    public int HeadDim { get; }
    /// <summary>The dimensions rotated at the start of each head: two per inverse frequency.</summary>
    public int RotaryDim { get; }
    public RopeStyle Style { get; }
    public float[] InverseFrequencies { get; }

    public RopeTable(int headDim, float[] inverseFrequencies, RopeStyle style = RopeStyle.RotateHalf)
    {
        if (headDim % 2 != 0) throw new ArgumentException($"rotary embedding needs an even head size, got {headDim}");
        if (inverseFrequencies.Length == 0 || 2 * inverseFrequencies.Length > headDim)
            throw new ArgumentException($"expected 1 to {headDim / 2} inverse frequencies, got {inverseFrequencies.Length}");
        HeadDim = headDim;
        RotaryDim = 2 * inverseFrequencies.Length;
        Style = style;
        InverseFrequencies = inverseFrequencies;
    }

    /// <summary>
    /// cos and sin of position·inv_freq, one per rotated pair. The angle is formed in float32, as torch
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
    /// cos then sin of the angles of <paramref name="position"/> (RotaryDim/2 values each), from a table grown on
    /// demand: every layer rotates queries and keys by the same angles, so each position's cos/sin is computed once
    /// instead of twice per layer. False for a position the table does not hold (negative or very large); use
    /// <see cref="Angles"/> then.
    /// </summary>
    public bool TryGetCosSin(int position, out ReadOnlySpan<float> cosSin)
    {
        cosSin = default;
        if ((uint)position >= MaxCachedPositions) return false;
        float[] table = _cosSin;
        if ((long)(position + 1) * RotaryDim > table.Length) table = Grow(position);
        cosSin = table.AsSpan(position * RotaryDim, RotaryDim);
        return true;
    }

    private float[] Grow(int position)
    {
        lock (_growLock)
        {
            float[] old = _cosSin;
            int cached = old.Length / RotaryDim;
            if (position < cached) return old;
            int capacity = Math.Min(MaxCachedPositions, Math.Max(position + 1, Math.Max(64, 2 * cached)));
            var table = new float[(long)capacity * RotaryDim];
            old.CopyTo(table, 0);
            int half = RotaryDim / 2;
            for (int p = cached; p < capacity; p++)
                Angles(p, table.AsSpan(p * RotaryDim, half), table.AsSpan(p * RotaryDim + half, half));
            // Readers take the array reference once, so publishing the filled table is enough synchronisation.
            Volatile.Write(ref _cosSin, table);
            return table;
        }
    }
}
