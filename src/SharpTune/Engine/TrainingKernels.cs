using System.Numerics;
using System.Numerics.Tensors;

namespace SharpTune.Engine;

/// <summary>
/// <see cref="CpuBackend"/>'s element-wise and per-row operations of the decoder, each forward next to its backward
/// (llm.c style), one implementation for training and inference alike. Buffers are row-major [rows × width]; loops
/// are split over the engine's thread pool (a decode step's single row stays on the caller), so a matrix product
/// issued inside one of them runs serially on that thread.
/// </summary>
internal static unsafe class TrainingKernels
{
    /// <summary>y = x · Wᵀ (+ bias) for x [rows × in], W [out × in].</summary>
    public static void LinearForward(IGemmKernel gemm, float[] x, int rows, int inFeatures, float[] weight, float[]? bias, int outFeatures, float[] y)
    {
        fixed (float* px = x, pw = weight, py = y)
            gemm.Sgemm(false, true, rows, outFeatures, inFeatures, 1f, px, inFeatures, pw, inFeatures, 0f, py, outFeatures);
        if (bias is not null) AddBias(y, rows, bias, outFeatures);
    }

    /// <summary>Adds bias to each of the first rows rows of y [rows × outFeatures].</summary>
    public static void AddBias(float[] y, int rows, float[] bias, int outFeatures) =>
        GemmThreadPool.Shared.ForRanges(rows, 64, (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                var row = y.AsSpan(r * outFeatures, outFeatures);
                TensorPrimitives.Add(row, bias, row);
            }
        });

    /// <summary>
    /// Backward of y = x · Wᵀ + b: dW += dyᵀ · x and db += Σ dy where those gradients are wanted, and
    /// dx = dy · W (added to dx when accumulate, else written) where dx is wanted.
    /// </summary>
    public static void LinearBackward(IGemmKernel gemm, float[] x, float[] dy, int rows, int inFeatures, int outFeatures,
        float[] weight, float[]? weightGrad, float[]? biasGrad, float[]? dx, bool accumulate)
    {
        fixed (float* px = x, pdy = dy, pw = weight)
        {
            if (weightGrad is not null)
                fixed (float* pdw = weightGrad)
                    gemm.Sgemm(true, false, outFeatures, inFeatures, rows, 1f, pdy, outFeatures, px, inFeatures, 1f, pdw, inFeatures);
            if (dx is not null)
                fixed (float* pdx = dx)
                    gemm.Sgemm(false, false, rows, inFeatures, outFeatures, 1f, pdy, outFeatures, pw, inFeatures, accumulate ? 1f : 0f, pdx, inFeatures);
        }
        if (biasGrad is not null)
            ColumnSums(dy, rows, outFeatures, biasGrad);
    }

    /// <summary>sums[c] += Σ_r values[r, c], accumulated in double per column block.</summary>
    public static void ColumnSums(float[] values, int rows, int width, float[] sums)
    {
        GemmThreadPool.Shared.ForRanges(width, 32, (start, end) =>
        {
            var acc = new double[end - start];
            for (int r = 0; r < rows; r++)
            {
                int offset = r * width;
                for (int c = start; c < end; c++) acc[c - start] += values[offset + c];
            }
            for (int c = start; c < end; c++) sums[c] += (float)acc[c - start];
        });
    }

    /// <summary>
    /// RMSNorm over groups of <c>weight.Length</c> values (a whole row, or one head for Qwen3's q/k norm):
    /// y = w · x / √(mean(x²) + eps), y may be x. Saves 1/rms per group for the backward when inverseRms is given.
    /// </summary>
    public static void RmsNormForward(float[] x, int groups, float[] weight, float eps, float[] y, float[]? inverseRms)
    {
        int width = weight.Length;
        GemmThreadPool.Shared.ForRanges(groups, 32, (start, end) =>
        {
            for (int g = start; g < end; g++)
            {
                var src = x.AsSpan(g * width, width);
                var dst = y.AsSpan(g * width, width);
                float r = 1f / MathF.Sqrt((float)(SumOfSquares(src) / width) + eps);
                if (inverseRms is not null) inverseRms[g] = r;
                TensorPrimitives.Multiply(src, r, dst);
                TensorPrimitives.Multiply(dst, weight, dst);
            }
        });
    }

    /// <summary>
    /// Σ x² accumulated in double: the reference sums in float32 pairwise, so a long float accumulator would drift
    /// further from it than an (almost) exact sum does.
    /// </summary>
    private static double SumOfSquares(ReadOnlySpan<float> values)
    {
        var lower = Vector<double>.Zero;
        var upper = Vector<double>.Zero;
        int i = 0;
        for (; i + Vector<float>.Count <= values.Length; i += Vector<float>.Count)
        {
            Vector.Widen(new Vector<float>(values[i..]), out var low, out var high);
            lower += low * low;
            upper += high * high;
        }
        double sum = Vector.Sum(lower + upper);
        for (; i < values.Length; i++) sum += (double)values[i] * values[i];
        return sum;
    }

    /// <summary>
    /// Backward of RMSNorm: with x̂ = x·r, dx = r·(dy⊙w − x̂·mean(dy⊙w⊙x̂)) written to dx (may alias dy), and
    /// dw += Σ dy⊙x̂ when weightGrad is given.
    /// </summary>
    public static void RmsNormBackward(float[] x, float[] dy, int groups, float[] weight, float[] inverseRms, float[]? dx, float[]? weightGrad)
    {
        int width = weight.Length;
        if (weightGrad is not null)
        {
            // Column sums in a separate pass so the row loop below can run in parallel without sharing dw.
            GemmThreadPool.Shared.ForRanges(width, 16, (start, end) =>
            {
                var acc = new double[end - start];
                for (int g = 0; g < groups; g++)
                {
                    float r = inverseRms[g];
                    int offset = g * width;
                    for (int c = start; c < end; c++) acc[c - start] += (double)dy[offset + c] * (x[offset + c] * r);
                }
                for (int c = start; c < end; c++) weightGrad[c] += (float)acc[c - start];
            });
        }
        if (dx is null) return;
        GemmThreadPool.Shared.ForRanges(groups, 32, (start, end) =>
        {
            for (int g = start; g < end; g++)
            {
                int offset = g * width;
                float r = inverseRms[g];
                double dot = 0;
                for (int c = 0; c < width; c++) dot += (double)dy[offset + c] * weight[c] * (x[offset + c] * r);
                float meanDot = (float)(dot / width);
                for (int c = 0; c < width; c++)
                {
                    float xhat = x[offset + c] * r;
                    dx[offset + c] = r * (dy[offset + c] * weight[c] - xhat * meanDot);
                }
            }
        });
    }

    /// <summary>
    /// Rotates the first <see cref="RopeTable.RotaryDim"/> dimensions of every head of every row by its position's
    /// angles in place, in the table's pairing (<see cref="Rotate"/> or <see cref="RotatePairs"/>); the rest of each head
    /// passes unchanged. inverse rotates by the negative angles, which is the backward of the rotation.
    /// </summary>
    public static void Rope(float[] x, int rows, int heads, RopeTable rope, ReadOnlySpan<int> positions, bool inverse)
    {
        int headDim = rope.HeadDim, width = heads * headDim;
        fixed (int* p = positions)
        {
            // The positions' address outlives the pool call (it returns when every range is done).
            nint address = (nint)p;
            GemmThreadPool.Shared.ForRanges(rows, 16, (start, end) =>
            {
                int rotary = rope.RotaryDim, half = rotary / 2;
                bool pairs = rope.Style == RopeStyle.InterleavedPairs;
                Span<float> computed = stackalloc float[rotary];
                Span<float> negatedSin = stackalloc float[half];
                for (int r = start; r < end; r++)
                {
                    int position = ((int*)address)[r];
                    scoped ReadOnlySpan<float> cosSin;
                    if (!rope.TryGetCosSin(position, out cosSin))
                    {
                        rope.Angles(position, computed[..half], computed[half..]);
                        cosSin = computed;
                    }
                    ReadOnlySpan<float> cos = cosSin[..half], sin = cosSin[half..];
                    if (inverse)
                    {
                        TensorPrimitives.Negate(sin, negatedSin);
                        sin = negatedSin;
                    }
                    for (int h = 0; h < heads; h++)
                    {
                        var rotated = x.AsSpan(r * width + h * headDim, rotary);
                        if (pairs) RotatePairs(rotated, cos, sin);
                        else Rotate(rotated, cos, sin);
                    }
                }
            });
        }
    }

    /// <summary>(x₁, x₂) ← (x₁·cos − x₂·sin, x₂·cos + x₁·sin) for the two halves of one head's rotated part, in place.</summary>
    private static void Rotate(Span<float> head, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = cos.Length, i = 0;
        Span<float> first = head[..half], second = head[half..];
        for (; i + Vector<float>.Count <= half; i += Vector<float>.Count)
        {
            var x1 = new Vector<float>(first[i..]);
            var x2 = new Vector<float>(second[i..]);
            var c = new Vector<float>(cos[i..]);
            var s = new Vector<float>(sin[i..]);
            (x1 * c - x2 * s).CopyTo(first[i..]);
            (x2 * c + x1 * s).CopyTo(second[i..]);
        }
        for (; i < half; i++)
        {
            float x1 = first[i], x2 = second[i];
            first[i] = x1 * cos[i] - x2 * sin[i];
            second[i] = x2 * cos[i] + x1 * sin[i];
        }
    }

    /// <summary>
    /// (x[2i], x[2i+1]) ← (x[2i]·cos − x[2i+1]·sin, x[2i+1]·cos + x[2i]·sin) for the neighbouring pairs of one head's
    /// rotated part, in place: ChatGLM's apply_rotary_pos_emb on x.reshape(..., rot_dim / 2, 2).
    /// </summary>
    private static void RotatePairs(Span<float> head, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        for (int i = 0; i < cos.Length; i++)
        {
            float x1 = head[2 * i], x2 = head[2 * i + 1];
            head[2 * i] = x1 * cos[i] - x2 * sin[i];
            head[2 * i + 1] = x2 * cos[i] + x1 * sin[i];
        }
    }

    /// <summary>Elements per vectorised block of the SwiGLU backward: the block's σ(g) stays on the stack.</summary>
    private const int SwiGluBlock = 1024;

    /// <summary>dg = da·u·σ(g)·(1 + g·(1 − σ(g))), du = da·silu(g).</summary>
    public static void SwiGluBackward(float[] gate, float[] up, float[] dActivation, int count, float[] dGate, float[] dUp)
    {
        GemmThreadPool.Shared.ForRanges(count, 16384, (start, end) =>
        {
            Span<float> sigmoid = stackalloc float[SwiGluBlock];
            for (int i = start; i < end; i += SwiGluBlock)
            {
                int n = Math.Min(SwiGluBlock, end - i);
                var s = sigmoid[..n];
                var g = gate.AsSpan(i, n);
                var da = dActivation.AsSpan(i, n);
                var du = dUp.AsSpan(i, n);
                var dg = dGate.AsSpan(i, n);
                TensorPrimitives.Sigmoid(g, s);
                // du = da·g·σ
                TensorPrimitives.Multiply(da, g, du);
                TensorPrimitives.Multiply(du, s, du);
                // dg = da·u·σ·(1 + g·(1 − σ)) = da·u·σ·(1 + g − g·σ)
                TensorPrimitives.Multiply(g, s, dg);
                TensorPrimitives.Subtract(g, dg, dg);
                TensorPrimitives.Add(dg, 1f, dg);
                TensorPrimitives.Multiply(dg, s, dg);
                TensorPrimitives.Multiply(dg, up.AsSpan(i, n), dg);
                TensorPrimitives.Multiply(dg, da, dg);
            }
        });
    }

    /// <summary>See <see cref="IComputeBackend.LabelLogProbs"/>.</summary>
    public static void LabelLogProbs(float[] logits, int rows, int vocab, int[] targets, int offset, double[] logProbs,
        Func<int, double, float>? gradient) =>
        GemmThreadPool.Shared.ForRanges(rows, 1, (lo, hi) =>
        {
            for (int i = lo; i < hi; i++)
            {
                var row = logits.AsSpan(i * vocab, vocab);
                int token = offset + i, target = targets[token];
                float targetLogit = row[target];
                // Vectorised exp of the max-shifted logits in place; their sum is taken in double.
                float max = TensorPrimitives.Max(row);
                TensorPrimitives.Subtract(row, max, row);
                TensorPrimitives.Exp(row, row);
                double sum = SumInDouble(row);
                // The negative log-likelihood negated, so that a cross-entropy sums exactly these values.
                double logProb = -(max + Math.Log(sum) - targetLogit);
                logProbs[token] = logProb;
                if (gradient is null) continue;
                float upstream = gradient(token, logProb);
                TensorPrimitives.Multiply(row, (float)(-upstream / sum), row);
                row[target] += upstream;
            }
        });

    /// <summary>Σ values, accumulated in double (vectorised: each lane widened to double before it is added).</summary>
    public static double SumInDouble(ReadOnlySpan<float> values)
    {
        var acc0 = System.Numerics.Vector<double>.Zero;
        var acc1 = System.Numerics.Vector<double>.Zero;
        int width = System.Numerics.Vector<float>.Count, i = 0;
        for (; i + width <= values.Length; i += width)
        {
            System.Numerics.Vector.Widen(new System.Numerics.Vector<float>(values[i..]), out var low, out var high);
            acc0 += low;
            acc1 += high;
        }
        double sum = System.Numerics.Vector.Sum(acc0 + acc1);
        for (; i < values.Length; i++) sum += values[i];
        return sum;
    }

    public static void Add(float[] dst, float[] src, int count) =>
        GemmThreadPool.Shared.ForRanges(count, 65536, (start, end) => TensorPrimitives.Add(dst.AsSpan(start, end - start), src.AsSpan(start, end - start), dst.AsSpan(start, end - start)));

    /// <summary>dst = a + b.</summary>
    public static void Sum(float[] a, float[] b, int count, float[] dst) =>
        GemmThreadPool.Shared.ForRanges(count, 65536, (start, end) => TensorPrimitives.Add(a.AsSpan(start, end - start), b.AsSpan(start, end - start), dst.AsSpan(start, end - start)));
}
