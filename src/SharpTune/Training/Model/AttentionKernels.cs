using System.Buffers;
using SharpTune.Engine;

namespace SharpTune.Training.Model;

/// <summary>
/// Grouped-query attention over a right-padded batch with transformers' eager semantics: query i of a row sees
/// keys j ≤ i whose attention_mask is 1; a query that sees no key at all (HF adds float32.min to every score, which
/// swamps them) attends uniformly to every key of its row. Work is split per (sequence, query head); the forward
/// keeps only each query's log-sum-exp, the backward recomputes the probabilities from it.
/// </summary>
internal static unsafe class AttentionKernels
{
    /// <summary>Marks a query row that sees no key (uniform probabilities).</summary>
    private const float UniformRow = float.NaN;

    public readonly record struct Shape(int Batch, int Time, int Heads, int KvHeads, int HeadDim)
    {
        public int QueryWidth => Heads * HeadDim;
        public int KvWidth => KvHeads * HeadDim;
        public int Group => Heads / KvHeads;
        public float Scale => 1f / MathF.Sqrt(HeadDim);
    }

    /// <summary>output [rows × heads·d] = softmax(scale · q kᵀ + mask) v; logSumExp [batch × heads × time].</summary>
    public static void Forward(Shape s, float[] q, float[] k, float[] v, int[] mask, float[] output, float[] logSumExp)
    {
        int t = s.Time;
        GemmThreadPool.Shared.For(s.Batch * s.Heads, task =>
        {
            int b = task / s.Heads, h = task % s.Heads, g = h / s.Group;
            float[] scores = ArrayPool<float>.Shared.Rent(t * t);
            try
            {
                fixed (float* pq = q, pk = k, pv = v, po = output, ps = scores)
                {
                    float* qh = pq + (long)b * t * s.QueryWidth + h * s.HeadDim;
                    float* kh = pk + (long)b * t * s.KvWidth + g * s.HeadDim;
                    float* vh = pv + (long)b * t * s.KvWidth + g * s.HeadDim;
                    GemmKernels.Default.Sgemm(false, true, t, t, s.HeadDim, s.Scale, qh, s.QueryWidth, kh, s.KvWidth, 0f, ps, t);
                    for (int i = 0; i < t; i++)
                        logSumExp[task * t + i] = SoftmaxRow(new Span<float>(ps + (long)i * t, t), i, mask.AsSpan(b * t, t));
                    GemmKernels.Default.Sgemm(false, false, t, s.HeadDim, t, 1f, ps, t, vh, s.KvWidth, 0f,
                        po + (long)b * t * s.QueryWidth + h * s.HeadDim, s.QueryWidth);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(scores);
            }
        });
    }

    /// <summary>Softmax of one row of raw scores in place over the keys query i sees; returns its log-sum-exp.</summary>
    private static float SoftmaxRow(Span<float> row, int query, ReadOnlySpan<int> keyMask)
    {
        float max = float.NegativeInfinity;
        for (int j = 0; j <= query; j++)
            if (keyMask[j] != 0 && row[j] > max) max = row[j];
        if (float.IsNegativeInfinity(max))
        {
            row.Fill(1f / row.Length);
            return UniformRow;
        }
        double sum = 0;
        for (int j = 0; j < row.Length; j++)
        {
            if (j <= query && keyMask[j] != 0)
            {
                float e = MathF.Exp(row[j] - max);
                row[j] = e;
                sum += e;
            }
            else row[j] = 0f;
        }
        float inverse = (float)(1.0 / sum);
        for (int j = 0; j <= query; j++) row[j] *= inverse;
        return max + (float)Math.Log(sum);
    }

    /// <summary>Recomputes the probabilities of one (sequence, head) into row from the raw scores and the saved log-sum-exp.</summary>
    private static void ProbabilitiesRow(Span<float> row, int query, ReadOnlySpan<int> keyMask, float logSumExp)
    {
        if (float.IsNaN(logSumExp))
        {
            row.Fill(1f / row.Length);
            return;
        }
        for (int j = 0; j < row.Length; j++)
            row[j] = j <= query && keyMask[j] != 0 ? MathF.Exp(row[j] - logSumExp) : 0f;
    }

    /// <summary>
    /// Gradients of q, k and v from dOutput. dq is written; dk and dv are written (summed over the query heads of
    /// each key/value head). keyScratch and valueScratch are [rows × heads·d] buffers.
    /// </summary>
    public static void Backward(Shape s, float[] q, float[] k, float[] v, int[] mask, float[] output, float[] logSumExp,
        float[] dOutput, float[] dq, float[] dk, float[] dv, float[] keyScratch, float[] valueScratch)
    {
        int t = s.Time, d = s.HeadDim;
        GemmThreadPool.Shared.For(s.Batch * s.Heads, task =>
        {
            int b = task / s.Heads, h = task % s.Heads, g = h / s.Group;
            float[] probabilities = ArrayPool<float>.Shared.Rent(t * t);
            float[] dScores = ArrayPool<float>.Shared.Rent(t * t);
            try
            {
                fixed (float* pq = q, pk = k, pv = v, po = output, pdo = dOutput, pdq = dq, pdk = keyScratch, pdv = valueScratch,
                       pp = probabilities, pds = dScores)
                {
                    long qOffset = (long)b * t * s.QueryWidth + h * d, kvOffset = (long)b * t * s.KvWidth + g * d;
                    float* qh = pq + qOffset, kh = pk + kvOffset, vh = pv + kvOffset;
                    var kernel = GemmKernels.Default;
                    kernel.Sgemm(false, true, t, t, d, s.Scale, qh, s.QueryWidth, kh, s.KvWidth, 0f, pp, t);
                    for (int i = 0; i < t; i++)
                        ProbabilitiesRow(new Span<float>(pp + (long)i * t, t), i, mask.AsSpan(b * t, t), logSumExp[task * t + i]);
                    // dP = dO · vᵀ, then dS = P ⊙ (dP − Σ_d dO⊙O) row by row.
                    kernel.Sgemm(false, true, t, t, d, 1f, pdo + qOffset, s.QueryWidth, vh, s.KvWidth, 0f, pds, t);
                    for (int i = 0; i < t; i++)
                    {
                        float* doRow = pdo + qOffset + (long)i * s.QueryWidth, oRow = po + qOffset + (long)i * s.QueryWidth;
                        double dot = 0;
                        for (int c = 0; c < d; c++) dot += (double)doRow[c] * oRow[c];
                        float rowDot = (float)dot;
                        float* pRow = pp + (long)i * t, dsRow = pds + (long)i * t;
                        for (int j = 0; j < t; j++) dsRow[j] = pRow[j] * (dsRow[j] - rowDot);
                    }
                    kernel.Sgemm(false, false, t, d, t, s.Scale, pds, t, kh, s.KvWidth, 0f, pdq + qOffset, s.QueryWidth);
                    kernel.Sgemm(true, false, t, d, t, s.Scale, pds, t, qh, s.QueryWidth, 0f, pdk + qOffset, s.QueryWidth);
                    kernel.Sgemm(true, false, t, d, t, 1f, pp, t, pdo + qOffset, s.QueryWidth, 0f, pdv + qOffset, s.QueryWidth);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(probabilities);
                ArrayPool<float>.Shared.Return(dScores);
            }
        });
        int rows = s.Batch * t;
        TrainingKernels.ParallelRanges(rows, 16, (start, end) =>
        {
            for (int r = start; r < end; r++)
                for (int g = 0; g < s.KvHeads; g++)
                {
                    var dkHead = dk.AsSpan(r * s.KvWidth + g * d, d);
                    var dvHead = dv.AsSpan(r * s.KvWidth + g * d, d);
                    keyScratch.AsSpan(r * s.QueryWidth + g * s.Group * d, d).CopyTo(dkHead);
                    valueScratch.AsSpan(r * s.QueryWidth + g * s.Group * d, d).CopyTo(dvHead);
                    for (int j = 1; j < s.Group; j++)
                    {
                        int offset = r * s.QueryWidth + (g * s.Group + j) * d;
                        System.Numerics.Tensors.TensorPrimitives.Add(dkHead, keyScratch.AsSpan(offset, d), dkHead);
                        System.Numerics.Tensors.TensorPrimitives.Add(dvHead, valueScratch.AsSpan(offset, d), dvHead);
                    }
                }
        });
    }
}
