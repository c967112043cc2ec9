using System.Buffers;
using System.Numerics.Tensors;

namespace SharpTune.Engine;

/// <summary>The shape of an attention: batch × time rows, query heads sharing KvHeads key/value heads.</summary>
public readonly record struct AttentionShape(int Batch, int Time, int Heads, int KvHeads, int HeadDim)
{
    public int QueryWidth => Heads * HeadDim;
    public int KvWidth => KvHeads * HeadDim;
    public int Group => Heads / KvHeads;
    public float Scale => 1f / MathF.Sqrt(HeadDim);
}

/// <summary>
/// Where the sequences of a training attention lie among its rows: sequence s is rows [Starts[s], Starts[s] +
/// Lengths[s]) and attends causally within itself only, to the keys whose KeyMask (one value per row) is nonzero. A
/// right-padded batch is its rows of Time tokens each with their attention mask; a padding-free batch is each
/// example's tokens back to back, so no work is spent on padding and examples packed in one row stay apart.
/// </summary>
public sealed record AttentionSequences(int[] Starts, int[] Lengths, int[] KeyMask)
{
    public int Count => Starts.Length;

    /// <summary>A right-padded batch [batch × time] with its attention mask.</summary>
    public static AttentionSequences Padded(int batch, int time, int[] mask) =>
        new(Enumerable.Range(0, batch).Select(b => b * time).ToArray(), Enumerable.Repeat(time, batch).ToArray(), mask);
}

/// <summary>
/// Grouped-query attention over a batch of sequences with transformers' eager semantics: query i of a row sees
/// keys j ≤ i whose attention_mask is 1; a query that sees no key at all (HF adds float32.min to every score, which
/// swamps them) attends uniformly to every key of its sequence. Work is split per (sequence, query head); the forward
/// keeps only each query's log-sum-exp, the backward recomputes the probabilities from it. Each task's products run
/// on the managed kernel, serially on the task's thread (see <see cref="GemmKernels.Managed"/>).
/// </summary>
internal static unsafe class AttentionKernels
{
    /// <summary>Marks a query row that sees no key (uniform probabilities).</summary>
    private const float UniformRow = float.NaN;

    /// <summary>
    /// Query rows per block. A block of queries [i0, i0 + 64) only needs keys [0, i0 + 64): the causal mask hides the
    /// rest, so the score and value products skip the upper triangle (about half the work for long sequences).
    /// </summary>
    private const int QueryBlock = 64;

    /// <summary>
    /// The keys a block of queries [i0, end) multiplies: [0, end), or every key of the row when one of the block's
    /// queries sees no key at all (it attends uniformly to all of them). firstKey is the row's first unmasked key.
    /// </summary>
    private static int KeysFor(int end, int firstKey, int time, int i0) => i0 < firstKey ? time : end;

    /// <summary>The first key of a row whose attention_mask is 1, or time when there is none.</summary>
    private static int FirstKey(ReadOnlySpan<int> keyMask)
    {
        int j = keyMask.IndexOfAnyExcept(0);
        return j < 0 ? keyMask.Length : j;
    }

    /// <summary>
    /// output [rows × heads·d] = softmax(scale · q kᵀ + mask) v; logSumExp [rows × heads], sequence by sequence
    /// ([heads × length] each, from its start · heads). Only the heads of <paramref name="s"/> are read.
    /// </summary>
    public static void Forward(AttentionShape s, AttentionSequences sequences, float[] q, float[] k, float[] v, float[] output, float[] logSumExp)
    {
        var kernel = GemmKernels.Managed;
        GemmThreadPool.Shared.For(sequences.Count * s.Heads, task =>
        {
            int b = task / s.Heads, h = task % s.Heads, g = h / s.Group;
            int start = sequences.Starts[b], t = sequences.Lengths[b];
            int lse = start * s.Heads + h * t;
            var keyMask = sequences.KeyMask.AsSpan(start, t);
            int firstKey = FirstKey(keyMask), firstMasked = FirstMasked(keyMask);
            float[] scores = ArrayPool<float>.Shared.Rent(QueryBlock * t);
            try
            {
                fixed (float* pq = q, pk = k, pv = v, po = output, ps = scores)
                {
                    float* kh = pk + (long)start * s.KvWidth + g * s.HeadDim;
                    float* vh = pv + (long)start * s.KvWidth + g * s.HeadDim;
                    for (int i0 = 0; i0 < t; i0 += QueryBlock)
                    {
                        int end = Math.Min(t, i0 + QueryBlock), rows = end - i0, keys = KeysFor(end, firstKey, t, i0);
                        float* qh = pq + ((long)start + i0) * s.QueryWidth + h * s.HeadDim;
                        kernel.Sgemm(false, true, rows, keys, s.HeadDim, s.Scale, qh, s.QueryWidth, kh, s.KvWidth, 0f, ps, keys);
                        for (int i = i0; i < end; i++)
                            logSumExp[lse + i] = SoftmaxRow(new Span<float>(ps + (long)(i - i0) * keys, keys), i, keyMask, firstMasked);
                        kernel.Sgemm(false, false, rows, s.HeadDim, keys, 1f, ps, keys, vh, s.KvWidth, 0f,
                            po + ((long)start + i0) * s.QueryWidth + h * s.HeadDim, s.QueryWidth);
                    }
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(scores);
            }
        });
    }

    /// <summary>The first key of a row whose attention_mask is 0, or time when every key is visible.</summary>
    private static int FirstMasked(ReadOnlySpan<int> keyMask)
    {
        int j = keyMask.IndexOf(0);
        return j < 0 ? keyMask.Length : j;
    }

    /// <summary>
    /// Softmax of one row of raw scores in place over the keys query i sees; returns its log-sum-exp. Keys before
    /// firstMasked are all visible, so a query below it takes the vectorised path over keys [0, query].
    /// </summary>
    private static float SoftmaxRow(Span<float> row, int query, ReadOnlySpan<int> keyMask, int firstMasked)
    {
        if (query < firstMasked)
        {
            var seen = row[..(query + 1)];
            float rowMax = TensorPrimitives.Max(seen);
            TensorPrimitives.Subtract(seen, rowMax, seen);
            TensorPrimitives.Exp(seen, seen);
            double total = TrainingKernels.SumInDouble(seen);
            TensorPrimitives.Multiply(seen, (float)(1.0 / total), seen);
            row[(query + 1)..].Clear();
            return rowMax + (float)Math.Log(total);
        }
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

    /// <summary>Recomputes the probabilities of one query's row in place from its raw scores and saved log-sum-exp.</summary>
    private static void ProbabilitiesRow(Span<float> row, int query, ReadOnlySpan<int> keyMask, int firstMasked, float logSumExp)
    {
        if (float.IsNaN(logSumExp))
        {
            row.Fill(1f / row.Length);
            return;
        }
        if (query < firstMasked)
        {
            var seen = row[..(query + 1)];
            TensorPrimitives.Subtract(seen, logSumExp, seen);
            TensorPrimitives.Exp(seen, seen);
            row[(query + 1)..].Clear();
            return;
        }
        for (int j = 0; j < row.Length; j++)
            row[j] = j <= query && keyMask[j] != 0 ? MathF.Exp(row[j] - logSumExp) : 0f;
    }

    /// <summary>
    /// Gradients of q, k and v from dOutput. dq is written; dk and dv are written (summed over the query heads of
    /// each key/value head). keyScratch and valueScratch are [rows × heads·d] buffers.
    /// </summary>
    public static void Backward(AttentionShape s, AttentionSequences sequences, float[] q, float[] k, float[] v, float[] output, float[] logSumExp,
        float[] dOutput, float[] dq, float[] dk, float[] dv, float[] keyScratch, float[] valueScratch)
    {
        int d = s.HeadDim;
        var kernel = GemmKernels.Managed;
        GemmThreadPool.Shared.For(sequences.Count * s.Heads, task =>
        {
            int b = task / s.Heads, h = task % s.Heads, g = h / s.Group;
            int start = sequences.Starts[b], t = sequences.Lengths[b];
            int lse = start * s.Heads + h * t;
            var keyMask = sequences.KeyMask.AsSpan(start, t);
            int firstKey = FirstKey(keyMask), firstMasked = FirstMasked(keyMask);
            float[] probabilities = ArrayPool<float>.Shared.Rent(QueryBlock * t);
            float[] dScores = ArrayPool<float>.Shared.Rent(QueryBlock * t);
            try
            {
                fixed (float* pq = q, pk = k, pv = v, po = output, pdo = dOutput, pdq = dq, pdk = keyScratch, pdv = valueScratch,
                       pp = probabilities, pds = dScores)
                {
                    long headOffset = (long)start * s.QueryWidth + h * d, kvOffset = (long)start * s.KvWidth + g * d;
                    float* kh = pk + kvOffset, vh = pv + kvOffset;
                    // Blocks add their share into this head's dk and dv, which start at zero.
                    for (int j = 0; j < t; j++)
                    {
                        new Span<float>(pdk + headOffset + (long)j * s.QueryWidth, d).Clear();
                        new Span<float>(pdv + headOffset + (long)j * s.QueryWidth, d).Clear();
                    }
                    for (int i0 = 0; i0 < t; i0 += QueryBlock)
                    {
                        int end = Math.Min(t, i0 + QueryBlock), rows = end - i0, keys = KeysFor(end, firstKey, t, i0);
                        long blockOffset = headOffset + (long)i0 * s.QueryWidth;
                        float* qh = pq + blockOffset, doh = pdo + blockOffset;
                        kernel.Sgemm(false, true, rows, keys, d, s.Scale, qh, s.QueryWidth, kh, s.KvWidth, 0f, pp, keys);
                        for (int i = i0; i < end; i++)
                            ProbabilitiesRow(new Span<float>(pp + (long)(i - i0) * keys, keys), i, keyMask, firstMasked, logSumExp[lse + i]);
                        // dP = dO · vᵀ, then dS = P ⊙ (dP − Σ_d dO⊙O) row by row.
                        kernel.Sgemm(false, true, rows, keys, d, 1f, doh, s.QueryWidth, vh, s.KvWidth, 0f, pds, keys);
                        for (int i = 0; i < rows; i++)
                        {
                            float* doRow = doh + (long)i * s.QueryWidth, oRow = po + blockOffset + (long)i * s.QueryWidth;
                            double dot = 0;
                            for (int c = 0; c < d; c++) dot += (double)doRow[c] * oRow[c];
                            var pRow = new ReadOnlySpan<float>(pp + (long)i * keys, keys);
                            var dsRow = new Span<float>(pds + (long)i * keys, keys);
                            TensorPrimitives.Subtract(dsRow, (float)dot, dsRow);
                            TensorPrimitives.Multiply(dsRow, pRow, dsRow);
                        }
                        kernel.Sgemm(false, false, rows, d, keys, s.Scale, pds, keys, kh, s.KvWidth, 0f, pdq + blockOffset, s.QueryWidth);
                        kernel.Sgemm(true, false, keys, d, rows, s.Scale, pds, keys, qh, s.QueryWidth, 1f, pdk + headOffset, s.QueryWidth);
                        kernel.Sgemm(true, false, keys, d, rows, 1f, pp, keys, doh, s.QueryWidth, 1f, pdv + headOffset, s.QueryWidth);
                    }
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(probabilities);
                ArrayPool<float>.Shared.Return(dScores);
            }
        });
        int rows = sequences.Starts[^1] + sequences.Lengths[^1];
        GemmThreadPool.Shared.ForRanges(rows, 16, (start, end) =>
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
