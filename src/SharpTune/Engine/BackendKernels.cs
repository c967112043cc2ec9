using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace SharpTune.Engine;

/// <summary>How a weight row's elements are read as fp32 vectors (the dtypes the GEMV streams without a copy).</summary>
internal unsafe interface IWeightElements
{
    static abstract int Size { get; }

    /// <summary>Elements index .. index + 2·Count of the row, widened.</summary>
    static abstract void Load<TSimd, TVector>(void* row, int index, out TVector lower, out TVector upper)
        where TSimd : IFloatSimd<TVector> where TVector : struct;

    static abstract float Element(void* row, int index);
}

internal readonly unsafe struct Bf16Elements : IWeightElements
{
    public static int Size => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load<TSimd, TVector>(void* row, int index, out TVector lower, out TVector upper)
        where TSimd : IFloatSimd<TVector> where TVector : struct =>
        TSimd.LoadBf16((ushort*)row + index, out lower, out upper);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Element(void* row, int index) => BFloat16.ToSingle(((ushort*)row)[index]);
}

internal readonly unsafe struct F32Elements : IWeightElements
{
    public static int Size => 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load<TSimd, TVector>(void* row, int index, out TVector lower, out TVector upper)
        where TSimd : IFloatSimd<TVector> where TVector : struct
    {
        lower = TSimd.Load((float*)row + index);
        upper = TSimd.Load((float*)row + index + TSimd.Count);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Element(void* row, int index) => ((float*)row)[index];
}

/// <summary>The register-blocked loops behind <see cref="CpuBackend"/>'s GEMV and attention.</summary>
internal static unsafe class BackendKernels
{
    /// <summary>
    /// y[r·yStride + j] = x[r·xStride ..]·w[j] for weight rows j in 0..rowCount (contiguous, k elements each) and
    /// input rows r in 0..xRows. Four weight rows share each load of x, and each is read straight from its stored
    /// dtype: the loop is bound by streaming the weights, so nothing is copied on the way.
    /// </summary>
    public static void GemvRows<TSimd, TVector, TWeight>(float* x, int xStride, int xRows, void* w, int k, int rowCount, float* y, int yStride)
        where TSimd : IFloatSimd<TVector> where TVector : struct where TWeight : IWeightElements
    {
        long rowBytes = (long)k * TWeight.Size;
        int j = 0;
        for (; j + 4 <= rowCount; j += 4)
            for (int r = 0; r < xRows; r++)
                Dot4<TSimd, TVector, TWeight>(x + (long)r * xStride, (byte*)w + j * rowBytes, rowBytes, k, y + (long)r * yStride + j);
        for (; j < rowCount; j++)
            for (int r = 0; r < xRows; r++)
                y[(long)r * yStride + j] = Dot1<TSimd, TVector, TWeight>(x + (long)r * xStride, (byte*)w + j * rowBytes, k);
    }

    private static void Dot4<TSimd, TVector, TWeight>(float* x, byte* w0, long rowBytes, int k, float* y)
        where TSimd : IFloatSimd<TVector> where TVector : struct where TWeight : IWeightElements
    {
        byte* w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
        int step = 2 * TSimd.Count, vectorEnd = k - k % step;
        // Two accumulators per row (lower/upper half of each step): eight independent FMA chains cover the FMA latency.
        TVector l0 = TSimd.Zero, u0 = TSimd.Zero, l1 = TSimd.Zero, u1 = TSimd.Zero;
        TVector l2 = TSimd.Zero, u2 = TSimd.Zero, l3 = TSimd.Zero, u3 = TSimd.Zero;
        // Four interleaved row streams outrun the hardware prefetcher (which also stops at 4 KiB page edges): each step
        // prefetches as many bytes as it consumes, two groups of four rows ahead. This took one core from ~6 to
        // ~12 GB/s on the reference machine. Past the matrix end a prefetch is a harmless no-op.
        byte* next = w0 + 8 * rowBytes;
        int bytesPerStep = 4 * step * TWeight.Size;
        for (int i = 0; i < vectorEnd; i += step)
        {
            if (Sse.IsSupported)
            {
                byte* ahead = next + (long)i * 4 * TWeight.Size;
                for (int line = 0; line < bytesPerStep; line += 64) Sse.Prefetch0(ahead + line);
            }
            TVector xl = TSimd.Load(x + i), xu = TSimd.Load(x + i + TSimd.Count);
            TWeight.Load<TSimd, TVector>(w0, i, out var wl, out var wu);
            l0 = TSimd.MultiplyAdd(wl, xl, l0);
            u0 = TSimd.MultiplyAdd(wu, xu, u0);
            TWeight.Load<TSimd, TVector>(w1, i, out wl, out wu);
            l1 = TSimd.MultiplyAdd(wl, xl, l1);
            u1 = TSimd.MultiplyAdd(wu, xu, u1);
            TWeight.Load<TSimd, TVector>(w2, i, out wl, out wu);
            l2 = TSimd.MultiplyAdd(wl, xl, l2);
            u2 = TSimd.MultiplyAdd(wu, xu, u2);
            TWeight.Load<TSimd, TVector>(w3, i, out wl, out wu);
            l3 = TSimd.MultiplyAdd(wl, xl, l3);
            u3 = TSimd.MultiplyAdd(wu, xu, u3);
        }
        float s0 = TSimd.Sum(TSimd.Add(l0, u0)), s1 = TSimd.Sum(TSimd.Add(l1, u1));
        float s2 = TSimd.Sum(TSimd.Add(l2, u2)), s3 = TSimd.Sum(TSimd.Add(l3, u3));
        for (int i = vectorEnd; i < k; i++)
        {
            float xi = x[i];
            s0 += TWeight.Element(w0, i) * xi;
            s1 += TWeight.Element(w1, i) * xi;
            s2 += TWeight.Element(w2, i) * xi;
            s3 += TWeight.Element(w3, i) * xi;
        }
        y[0] = s0;
        y[1] = s1;
        y[2] = s2;
        y[3] = s3;
    }

    private static float Dot1<TSimd, TVector, TWeight>(float* x, byte* w, int k)
        where TSimd : IFloatSimd<TVector> where TVector : struct where TWeight : IWeightElements
    {
        int step = 2 * TSimd.Count, vectorEnd = k - k % step;
        TVector lower = TSimd.Zero, upper = TSimd.Zero;
        for (int i = 0; i < vectorEnd; i += step)
        {
            TWeight.Load<TSimd, TVector>(w, i, out var wl, out var wu);
            lower = TSimd.MultiplyAdd(wl, TSimd.Load(x + i), lower);
            upper = TSimd.MultiplyAdd(wu, TSimd.Load(x + i + TSimd.Count), upper);
        }
        float sum = TSimd.Sum(TSimd.Add(lower, upper));
        for (int i = vectorEnd; i < k; i++) sum += TWeight.Element(w, i) * x[i];
        return sum;
    }

    /// <summary>
    /// Raw scores of four query rows against keys 0..keyEnd (a multiple of 2·Count): s_r[j] = q_r·key_j, with the
    /// keys transposed (keysT[i·keyStride + j] is element i of key j) so each step is a broadcast query element times
    /// a vector of 2·Count keys — the inner loop of a GEMM with a 4 × 2·Count register tile.
    /// </summary>
    public static void ScoresTile<TSimd, TVector>(float* keysT, int keyStride, int keyEnd, int headDim,
        float* q0, float* q1, float* q2, float* q3, float* s0, float* s1, float* s2, float* s3)
        where TSimd : IFloatSimd<TVector> where TVector : struct
    {
        int count = TSimd.Count;
        for (int j = 0; j < keyEnd; j += 2 * count)
        {
            TVector l0 = TSimd.Zero, u0 = TSimd.Zero, l1 = TSimd.Zero, u1 = TSimd.Zero;
            TVector l2 = TSimd.Zero, u2 = TSimd.Zero, l3 = TSimd.Zero, u3 = TSimd.Zero;
            float* column = keysT + j;
            for (int i = 0; i < headDim; i++, column += keyStride)
            {
                TVector kl = TSimd.Load(column), ku = TSimd.Load(column + count);
                TVector b = TSimd.Broadcast(q0[i]);
                l0 = TSimd.MultiplyAdd(b, kl, l0);
                u0 = TSimd.MultiplyAdd(b, ku, u0);
                b = TSimd.Broadcast(q1[i]);
                l1 = TSimd.MultiplyAdd(b, kl, l1);
                u1 = TSimd.MultiplyAdd(b, ku, u1);
                b = TSimd.Broadcast(q2[i]);
                l2 = TSimd.MultiplyAdd(b, kl, l2);
                u2 = TSimd.MultiplyAdd(b, ku, u2);
                b = TSimd.Broadcast(q3[i]);
                l3 = TSimd.MultiplyAdd(b, kl, l3);
                u3 = TSimd.MultiplyAdd(b, ku, u3);
            }
            TSimd.Store(l0, s0 + j);
            TSimd.Store(u0, s0 + j + count);
            TSimd.Store(l1, s1 + j);
            TSimd.Store(u1, s1 + j + count);
            TSimd.Store(l2, s2 + j);
            TSimd.Store(u2, s2 + j + count);
            TSimd.Store(l3, s3 + j);
            TSimd.Store(u3, s3 + j + count);
        }
    }

    /// <summary>
    /// o_r = Σ_j p_r[j] · value_j over keys 0..keyEnd for four rows (values row-major, headDim apart): one value
    /// vector load feeds four broadcast-FMAs.
    /// </summary>
    public static void WeightedValuesTile<TSimd, TVector>(float* values, int keyEnd, int headDim,
        float* p0, float* p1, float* p2, float* p3, float* o0, float* o1, float* o2, float* o3)
        where TSimd : IFloatSimd<TVector> where TVector : struct
    {
        int c = 0;
        for (; c + TSimd.Count <= headDim; c += TSimd.Count)
        {
            TVector a0 = TSimd.Zero, a1 = TSimd.Zero, a2 = TSimd.Zero, a3 = TSimd.Zero;
            float* value = values + c;
            for (int j = 0; j < keyEnd; j++, value += headDim)
            {
                TVector v = TSimd.Load(value);
                a0 = TSimd.MultiplyAdd(TSimd.Broadcast(p0[j]), v, a0);
                a1 = TSimd.MultiplyAdd(TSimd.Broadcast(p1[j]), v, a1);
                a2 = TSimd.MultiplyAdd(TSimd.Broadcast(p2[j]), v, a2);
                a3 = TSimd.MultiplyAdd(TSimd.Broadcast(p3[j]), v, a3);
            }
            TSimd.Store(a0, o0 + c);
            TSimd.Store(a1, o1 + c);
            TSimd.Store(a2, o2 + c);
            TSimd.Store(a3, o3 + c);
        }
        for (; c < headDim; c++)
        {
            float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (int j = 0; j < keyEnd; j++)
            {
                float v = values[(long)j * headDim + c];
                a0 += p0[j] * v;
                a1 += p1[j] * v;
                a2 += p2[j] * v;
                a3 += p3[j] * v;
            }
            o0[c] = a0;
            o1[c] = a1;
            o2[c] = a2;
            o3[c] = a3;
        }
    }
}
