using System.Numerics.Tensors;

namespace SharpTune.Engine;

/// <summary>
/// The host implementation of <see cref="IComputeBackend"/>: matrix products go to an <see cref="IGemmKernel"/>
/// (managed SIMD, oneDNN or OpenBLAS), everything else is SIMD loops over rows via System.Numerics.Tensors.
/// </summary>
public sealed unsafe class CpuBackend : IComputeBackend
{
    /// <summary>
    /// At or below this many rows a linear layer reads each weight row once and dots it with every input row:
    /// decode is bound by streaming the weights, and packing panels for a GEMM would cost as much as the product.
    /// </summary>
    private const int GemvMaxRows = 4;

    public IGemmKernel Gemm { get; }

    public CpuBackend(IGemmKernel gemm) => Gemm = gemm;

    public static CpuBackend CreateDefault() => new(GemmKernels.Default);

    public string Describe() => $"cpu, {GemmKernels.Describe(Gemm)}";

    public void Linear(Tensor x, int rows, WeightMatrix w, float[]? bias, Tensor y)
    {
        if (x.RowWidth != w.Cols) throw new ArgumentException($"linear: input width {x.RowWidth} but weight has {w.Cols} columns");
        if (y.RowWidth != w.Rows) throw new ArgumentException($"linear: output width {y.RowWidth} but weight has {w.Rows} rows");
        if (rows <= GemvMaxRows)
            Gemv(x, rows, w, y);
        else
            fixed (float* px = x.Data, py = y.Data)
                Gemm.GemmWeight(rows, px, x.RowWidth, w, 0f, py, y.RowWidth);
        if (bias is not null)
            for (int r = 0; r < rows; r++)
                TensorPrimitives.Add(y.Row(r), bias, y.Row(r));
    }

    private static void Gemv(Tensor x, int rows, WeightMatrix w, Tensor y)
    {
        int n = w.Rows, k = w.Cols;
        float[] xs = x.Data, ys = y.Data;
        int xWidth = x.RowWidth, yWidth = y.RowWidth;
        // Blocks of weight rows per task keep the scheduling overhead small next to the row dot products.
        const int block = 64;
        int blocks = (n + block - 1) / block;
        GemmThreadPool.Shared.For(blocks, bi =>
        {
            float[] scratch = ThreadRow(k);
            int end = Math.Min(n, (bi + 1) * block);
            for (int j = bi * block; j < end; j++)
            {
                ReadOnlySpan<float> wRow;
                if (w.DType == DType.F32)
                    wRow = new ReadOnlySpan<float>((float*)w.Data + (long)j * k, k);
                else
                {
                    w.ReadRow(j, scratch);
                    wRow = scratch.AsSpan(0, k);
                }
                for (int r = 0; r < rows; r++)
                    ys[r * yWidth + j] = TensorPrimitives.Dot(new ReadOnlySpan<float>(xs, r * xWidth, k), wRow);
            }
        });
    }

    public void Embedding(WeightMatrix table, ReadOnlySpan<int> ids, Tensor dst)
    {
        if (dst.RowWidth != table.Cols) throw new ArgumentException($"embedding: output width {dst.RowWidth} but table has {table.Cols} columns");
        for (int i = 0; i < ids.Length; i++)
        {
            int id = ids[i];
            if ((uint)id >= (uint)table.Rows)
                throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is outside the vocabulary (0..{table.Rows - 1})");
            table.ReadRow(id, dst.Row(i));
        }
    }

    public void RmsNorm(Tensor x, int rows, float[] weight, float eps, Tensor y)
    {
        int width = weight.Length;
        int count = rows * x.RowWidth / width;
        float[] xs = x.Data, ys = y.Data;
        for (int r = 0; r < count; r++)
        {
            ReadOnlySpan<float> src = new(xs, r * width, width);
            Span<float> dst = new(ys, r * width, width);
            // Mean of squares accumulated in double: the reference sums in float32 pairwise, so a long float
            // accumulator would drift further from it than an exact sum does.
            double sumSquares = 0;
            for (int i = 0; i < width; i++) sumSquares += (double)src[i] * src[i];
            float inverseRms = 1f / MathF.Sqrt((float)(sumSquares / width) + eps);
            TensorPrimitives.Multiply(src, inverseRms, dst);
            TensorPrimitives.Multiply(dst, weight, dst);
        }
    }

    public void ApplyRope(Tensor x, int rows, int heads, RopeTable rope, ReadOnlySpan<int> positions)
    {
        int d = rope.HeadDim, half = d / 2;
        Span<float> cos = stackalloc float[half];
        Span<float> sin = stackalloc float[half];
        Span<float> rotated = stackalloc float[d];
        for (int r = 0; r < rows; r++)
        {
            rope.Angles(positions[r], cos, sin);
            for (int h = 0; h < heads; h++)
            {
                Span<float> v = x.Data.AsSpan(r * x.RowWidth + h * d, d);
                for (int i = 0; i < half; i++)
                {
                    rotated[i] = v[i] * cos[i] - v[i + half] * sin[i];
                    rotated[i + half] = v[i + half] * cos[i] + v[i] * sin[i];
                }
                rotated.CopyTo(v);
            }
        }
    }

    public void SiluMul(Tensor gate, Tensor up, int rows, Tensor dst)
    {
        int n = rows * gate.RowWidth;
        // Chunked through a stack buffer so dst may alias gate (the MLP writes its activation over the gate).
        Span<float> sigmoid = stackalloc float[256];
        for (int start = 0; start < n; start += sigmoid.Length)
        {
            int len = Math.Min(sigmoid.Length, n - start);
            ReadOnlySpan<float> g = gate.Data.AsSpan(start, len);
            Span<float> s = sigmoid[..len];
            TensorPrimitives.Sigmoid(g, s);
            TensorPrimitives.Multiply(s, g, s);
            TensorPrimitives.Multiply(s, up.Data.AsSpan(start, len), dst.Data.AsSpan(start, len));
        }
    }

    public void AddInPlace(Tensor dst, Tensor src, int rows)
    {
        int n = rows * dst.RowWidth;
        TensorPrimitives.Add(dst.Data.AsSpan(0, n), src.Data.AsSpan(0, n), dst.Data.AsSpan(0, n));
    }

    public void Attention(Tensor q, KvCacheLayer cache, int batch, int newTokens, byte[] mask, int maskStride, Tensor output)
    {
        int headDim = cache.HeadDim;
        int heads = q.RowWidth / headDim;
        int groupSize = heads / cache.KvHeads;
        int keys = cache.Length;
        int past = keys - newTokens;
        float scale = 1f / MathF.Sqrt(headDim);
        float[] qs = q.Data, outs = output.Data;

        GemmThreadPool.Shared.For(batch * heads, bh =>
        {
            float[] scores = ThreadRow(keys);
            int b = bh / heads, h = bh % heads, kvHead = h / groupSize;
            int headBase = cache.Offset(b, kvHead, 0);
            for (int t = 0; t < newTokens; t++)
            {
                int position = past + t;
                int row = b * newTokens + t;
                ReadOnlySpan<float> query = new(qs, row * q.RowWidth + h * headDim, headDim);
                Span<float> result = new(outs, row * output.RowWidth + h * headDim, headDim);
                float max = float.NegativeInfinity;
                for (int j = 0; j <= position; j++)
                {
                    if (mask[b * maskStride + j] == 0) continue;
                    float s = TensorPrimitives.Dot(query, new ReadOnlySpan<float>(cache.Keys, headBase + j * headDim, headDim)) * scale;
                    scores[j] = s;
                    if (s > max) max = s;
                }
                result.Clear();
                if (float.IsNegativeInfinity(max))
                {
                    // Every key is masked. The reference adds float32.min to every score, which swamps the
                    // scores themselves, so its softmax is uniform over all keys of the row: do the same.
                    for (int j = 0; j < keys; j++)
                        TensorPrimitives.Add(result, new ReadOnlySpan<float>(cache.Values, headBase + j * headDim, headDim), result);
                    TensorPrimitives.Multiply(result, 1f / keys, result);
                    continue;
                }
                float sum = 0;
                for (int j = 0; j <= position; j++)
                {
                    if (mask[b * maskStride + j] == 0) continue;
                    float e = MathF.Exp(scores[j] - max);
                    scores[j] = e;
                    sum += e;
                }
                float inverseSum = 1f / sum;
                for (int j = 0; j <= position; j++)
                {
                    if (mask[b * maskStride + j] == 0) continue;
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(cache.Values, headBase + j * headDim, headDim), scores[j] * inverseSum, result, result);
                }
            }
        });
    }

    [ThreadStatic] private static float[]? t_row;

    /// <summary>A per-thread scratch row that only grows, so pool tasks allocate nothing per call.</summary>
    private static float[] ThreadRow(int length)
    {
        if (t_row is null || t_row.Length < length) t_row = new float[length];
        return t_row;
    }
}
