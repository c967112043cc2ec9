using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace SharpTune.Engine;

/// <summary>
/// The host implementation of <see cref="IComputeBackend"/>: matrix products of more than a few rows go to an
/// <see cref="IGemmKernel"/> (managed SIMD, oneDNN or OpenBLAS); decode's GEMV and attention are this class's own
/// register-tiled loops (<see cref="BackendKernels"/>), the rest SIMD loops over rows via System.Numerics.Tensors.
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

    public void Linear(Tensor x, int rows, IFrozenMatrix w, float[]? bias, Tensor y)
    {
        if (x.RowWidth != w.Cols) throw new ArgumentException($"linear: input width {x.RowWidth} but weight has {w.Cols} columns");
        if (y.RowWidth != w.Rows) throw new ArgumentException($"linear: output width {y.RowWidth} but weight has {w.Rows} rows");
        w.MultiplyTransposed(x.Data, rows, y.Data);
        if (bias is not null)
            for (int r = 0; r < rows; r++)
                TensorPrimitives.Add(y.Row(r), bias, y.Row(r));
    }

    private static void Gemv(Tensor x, int rows, WeightMatrix w, Tensor y)
    {
        var job = t_gemv ??= new GemvJob();
        fixed (float* px = x.Data, py = y.Data)
        {
            job.Set(px, x.RowWidth, rows, w, py, y.RowWidth);
            GemmThreadPool.Shared.For(job.Tasks, job.Body);
        }
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

    public void EmbeddingBackward(float[] dOutput, ReadOnlySpan<int> ids, int width, float[] tableGrad)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            var dst = tableGrad.AsSpan(ids[i] * width, width);
            TensorPrimitives.Add(dst, dOutput.AsSpan(i * width, width), dst);
        }
    }

    public void RmsNorm(float[] x, int groups, float[] weight, float eps, float[] y, float[]? inverseRms = null) =>
        TrainingKernels.RmsNormForward(x, groups, weight, eps, y, inverseRms);

    public void RmsNormBackward(float[] x, float[] dy, int groups, float[] weight, float[] inverseRms, float[]? dx, float[]? weightGrad) =>
        TrainingKernels.RmsNormBackward(x, dy, groups, weight, inverseRms, dx, weightGrad);

    public void Rope(float[] x, int rows, int heads, RopeTable rope, ReadOnlySpan<int> positions, bool inverse = false) =>
        TrainingKernels.Rope(x, rows, heads, rope, positions, inverse);

    public void SiluMul(float[] gate, float[] up, int count, float[] dst)
    {
        var job = t_siluMul ??= new SiluMulJob();
        job.Set(gate, up, dst, count);
        GemmThreadPool.Shared.For(job.Tasks, job.Body);
        job.Release();
    }

    public void SiluMulBackward(float[] gate, float[] up, float[] dActivation, int count, float[] dGate, float[] dUp) =>
        TrainingKernels.SwiGluBackward(gate, up, dActivation, count, dGate, dUp);

    public void Add(float[] dst, float[] src, int count) => TrainingKernels.Add(dst, src, count);

    public void Sum(float[] a, float[] b, int count, float[] dst) => TrainingKernels.Sum(a, b, count, dst);

    public void CopyColumns(float[] source, int sourceWidth, int sourceOffset, float[] destination, int destinationWidth, int destinationOffset, int rows, int width)
    {
        for (int r = 0; r < rows; r++)
            Array.Copy(source, (long)r * sourceWidth + sourceOffset, destination, (long)r * destinationWidth + destinationOffset, width);
    }

    public void Linear(float[] x, int rows, float[] weight, int inFeatures, int outFeatures, float[]? bias, float[] y) =>
        TrainingKernels.LinearForward(Gemm, x, rows, inFeatures, weight, bias, outFeatures, y);

    public void LinearBackward(float[] x, float[] dy, int rows, float[] weight, int inFeatures, int outFeatures,
        float[]? weightGrad, float[]? biasGrad, float[]? dx, bool accumulate) =>
        TrainingKernels.LinearBackward(Gemm, x, dy, rows, inFeatures, outFeatures, weight, weightGrad, biasGrad, dx, accumulate);

    public void NarrowProduct(float[] x, int rows, int k, float[] y, int n, float alpha, float[] c)
    {
        fixed (float* px = x, py = y, pc = c)
            SkinnyGemm.MultiplyTransposed(rows, n, k, alpha, px, k, py, k, 0f, pc, n);
    }

    public void AddBias(float[] y, int rows, float[] bias) => TrainingKernels.AddBias(y, rows, bias, bias.Length);

    public void ColumnSums(float[] values, int rows, float[] sums) => TrainingKernels.ColumnSums(values, rows, sums.Length, sums);

    public void AttentionForward(AttentionShape shape, AttentionSequences sequences, float[] q, float[] k, float[] v, float[] output, float[] logSumExp) =>
        AttentionKernels.Forward(shape, sequences, q, k, v, output, logSumExp);

    public void AttentionBackward(AttentionShape shape, AttentionSequences sequences, float[] q, float[] k, float[] v, float[] output, float[] logSumExp,
        float[] dOutput, float[] dq, float[] dk, float[] dv, float[] keyScratch, float[] valueScratch) =>
        AttentionKernels.Backward(shape, sequences, q, k, v, output, logSumExp, dOutput, dq, dk, dv, keyScratch, valueScratch);

    public void LabelLogProbs(float[] logits, int rows, int vocab, int[] targets, int offset, double[] logProbs,
        Func<int, double, float>? gradient) =>
        TrainingKernels.LabelLogProbs(logits, rows, vocab, targets, offset, logProbs, gradient);

    public void Attention(Tensor q, KvCacheLayer cache, int batch, int newTokens, byte[] mask, int maskStride, Tensor output)
    {
        var job = t_attention ??= new AttentionJob();
        fixed (float* pq = q.Data, po = output.Data, pk = cache.Keys, pv = cache.Values)
        fixed (byte* pm = mask)
        {
            job.Set(pq, q.RowWidth, po, output.RowWidth, cache, pk, pv, batch, newTokens, pm, maskStride);
            GemmThreadPool.Shared.For(job.Tasks, job.Body);
            job.Release();
        }
    }

    // One reusable job per issuing thread: a call stores its operands there and hands the pool a delegate created
    // once, so decode's hundreds of calls per token allocate nothing. A nested call runs on another thread's job.
    [ThreadStatic] private static GemvJob? t_gemv;
    [ThreadStatic] private static AttentionJob? t_attention;
    [ThreadStatic] private static SiluMulJob? t_siluMul;

    /// <summary>dst = silu(gate) ⊙ up in chunks over the pool; prefill's MLP activation is millions of elements.</summary>
    private sealed class SiluMulJob
    {
        // 16 Ki elements per task: decode's single row (4864 elements) stays one serial task, prefill splits evenly.
        private const int ElementsPerTask = 16 * 1024;
        private const int StackChunk = 256;

        private float[] _gate = [], _up = [], _dst = [];
        private int _count;

        public SiluMulJob() => Body = Run;

        public Action<int> Body { get; }

        public int Tasks => (_count + ElementsPerTask - 1) / ElementsPerTask;

        public void Set(float[] gate, float[] up, float[] dst, int count)
        {
            _gate = gate;
            _up = up;
            _dst = dst;
            _count = count;
        }

        /// <summary>Drops the call's arrays, so an idle job does not keep a workspace alive.</summary>
        public void Release() => Set([], [], [], 0);

        private void Run(int task)
        {
            int end = Math.Min(_count, (task + 1) * ElementsPerTask);
            // Through a stack buffer so dst may alias gate (the MLP writes its activation over the gate).
            Span<float> sigmoid = stackalloc float[StackChunk];
            for (int start = task * ElementsPerTask; start < end; start += StackChunk)
            {
                int length = Math.Min(StackChunk, end - start);
                ReadOnlySpan<float> g = _gate.AsSpan(start, length);
                Span<float> s = sigmoid[..length];
                TensorPrimitives.Sigmoid(g, s);
                TensorPrimitives.Multiply(s, g, s);
                TensorPrimitives.Multiply(s, _up.AsSpan(start, length), _dst.AsSpan(start, length));
            }
        }
    }

    /// <summary>y = x·wᵀ for up to <see cref="GemvMaxRows"/> rows, split over the pool in blocks of weight rows.</summary>
    private sealed class GemvJob
    {
        // 64 weight rows per task (112 KiB of bf16 at K = 896): enough work to amortise handing a task out, and
        // lm_head's 151936 rows still make ~2400 tasks, so the cores finish together.
        private const int RowsPerTask = 64;

        [ThreadStatic] private static ScratchBuffer? t_widened;

        private float* _x, _y;
        private int _xStride, _yStride, _rows;
        private WeightMatrix _w;

        public GemvJob() => Body = Run;

        public Action<int> Body { get; }

        public int Tasks => (_w.Rows + RowsPerTask - 1) / RowsPerTask;

        public void Set(float* x, int xStride, int rows, WeightMatrix w, float* y, int yStride)
        {
            _x = x;
            _xStride = xStride;
            _rows = rows;
            _w = w;
            _y = y;
            _yStride = yStride;
        }

        private void Run(int task)
        {
            if (FloatSimd.Vector512Preferred) Run<Simd512, Vector512<float>>(task);
            else if (FloatSimd.Vector256Preferred) Run<Simd256, Vector256<float>>(task);
            else Run<Simd128, Vector128<float>>(task);
        }

        private void Run<TSimd, TVector>(int task) where TSimd : IFloatSimd<TVector> where TVector : struct
        {
            int first = task * RowsPerTask, count = Math.Min(RowsPerTask, _w.Rows - first);
            int k = _w.Cols;
            float* y = _y + first;
            switch (_w.DType)
            {
                case DType.BF16:
                    BackendKernels.GemvRows<TSimd, TVector, Bf16Elements>(_x, _xStride, _rows, (ushort*)_w.Data + (long)first * k, k, count, y, _yStride);
                    break;
                case DType.F32:
                    BackendKernels.GemvRows<TSimd, TVector, F32Elements>(_x, _xStride, _rows, (float*)_w.Data + (long)first * k, k, count, y, _yStride);
                    break;
                default:
                    // F16 has no exact shift widening; widen the block once and stream the fp32 copy.
                    float* widened = (t_widened ??= new ScratchBuffer()).Get((long)count * k);
                    for (int j = 0; j < count; j++) _w.ReadRow(first + j, new Span<float>(widened + (long)j * k, k));
                    BackendKernels.GemvRows<TSimd, TVector, F32Elements>(_x, _xStride, _rows, widened, k, count, y, _yStride);
                    break;
            }
        }
    }

    /// <summary>
    /// Causal grouped-query attention, tiled. A task is one sequence × KV head × block of <see cref="QueryBlock"/>
    /// new tokens: it transposes the keys that block can see once, then runs every (token, query head of the group)
    /// row through it four rows at a time — scores as a register-tiled GEMM, an exact masked softmax per row, and the
    /// probability-weighted sum of values as a second tiled GEMM.
    /// </summary>
    private sealed class AttentionJob
    {
        // 32 tokens × the group's heads share one key transpose, which is then small next to the block's products.
        private const int QueryBlock = 32;

        [ThreadStatic] private static ScratchBuffer? t_keysTransposed;
        [ThreadStatic] private static ScratchBuffer? t_scores;

        private float* _q, _output, _keys, _values;
        private byte* _mask;
        private int _qStride, _outputStride, _maskStride;
        private int _newTokens, _headDim, _kvHeads, _groupSize, _keyCount, _past, _blocks;
        private KvCacheLayer? _cache;
        private float _scale;

        public AttentionJob() => Body = Run;

        public Action<int> Body { get; }

        public int Tasks { get; private set; }

        public void Set(float* q, int qStride, float* output, int outputStride, KvCacheLayer cache, float* keys, float* values,
            int batch, int newTokens, byte* mask, int maskStride)
        {
            _q = q;
            _qStride = qStride;
            _output = output;
            _outputStride = outputStride;
            _cache = cache;
            _keys = keys;
            _values = values;
            _newTokens = newTokens;
            _mask = mask;
            _maskStride = maskStride;
            _headDim = cache.HeadDim;
            _kvHeads = cache.KvHeads;
            _groupSize = qStride / _headDim / _kvHeads;
            _keyCount = cache.Length;
            _past = _keyCount - newTokens;
            _scale = 1f / MathF.Sqrt(_headDim);
            _blocks = (newTokens + QueryBlock - 1) / QueryBlock;
            Tasks = batch * _kvHeads * _blocks;
        }

        /// <summary>Drops the call's cache, so an idle job does not keep a KV cache alive.</summary>
        public void Release() => _cache = null;

        private void Run(int task)
        {
            if (FloatSimd.Vector512Preferred) Run<Simd512, Vector512<float>>(task);
            else if (FloatSimd.Vector256Preferred) Run<Simd256, Vector256<float>>(task);
            else Run<Simd128, Vector128<float>>(task);
        }

        private void Run<TSimd, TVector>(int task) where TSimd : IFloatSimd<TVector> where TVector : struct
        {
            int b = task / (_kvHeads * _blocks), kvHead = task / _blocks % _kvHeads, block = task % _blocks;
            int firstToken = block * QueryBlock, endToken = Math.Min(_newTokens, firstToken + QueryBlock);
            int d = _headDim, tile = 2 * TSimd.Count;
            int visible = _past + endToken;
            int keyStride = RoundUp(visible, tile), scoreStride = RoundUp(_keyCount, tile);
            int headBase = _cache!.Offset(b, kvHead, 0);
            float* keysT = (t_keysTransposed ??= new ScratchBuffer()).Get((long)d * keyStride);
            float* scores = (t_scores ??= new ScratchBuffer()).Get(4L * scoreStride);
            Transpose(_keys + headBase, visible, d, keysT, keyStride);
            byte* mask = _mask + (long)b * _maskStride;
            bool padded = new ReadOnlySpan<byte>(mask, visible).IndexOf((byte)0) >= 0;

            int rows = (endToken - firstToken) * _groupSize;
            float** q = stackalloc float*[4];
            float** o = stackalloc float*[4];
            float** s = stackalloc float*[4];
            int* length = stackalloc int[4];
            for (int first = 0; first < rows; first += 4)
            {
                int valid = Math.Min(4, rows - first);
                // A short last tile repeats row 0: it computes the same values into the same places, harmlessly.
                for (int r = 0; r < 4; r++)
                {
                    int row = first + (r < valid ? r : 0);
                    int t = firstToken + row / _groupSize, h = kvHead * _groupSize + row % _groupSize;
                    long tokenRow = (long)b * _newTokens + t;
                    q[r] = _q + tokenRow * _qStride + h * d;
                    o[r] = _output + tokenRow * _outputStride + h * d;
                    s[r] = r < valid ? scores + (long)r * scoreStride : scores;
                    length[r] = _past + t + 1;
                }
                int keyEnd = RoundUp(length[valid - 1], tile);
                BackendKernels.ScoresTile<TSimd, TVector>(keysT, keyStride, keyEnd, d, q[0], q[1], q[2], q[3], s[0], s[1], s[2], s[3]);
                int spanned = 0;
                for (int r = 0; r < valid; r++)
                {
                    length[r] = Softmax(s[r], length[r], padded ? mask : null);
                    spanned = Math.Max(spanned, length[r]);
                }
                for (int r = 0; r < valid; r++) new Span<float>(s[r] + length[r], spanned - length[r]).Clear();
                BackendKernels.WeightedValuesTile<TSimd, TVector>(_values + headBase, spanned, d, s[0], s[1], s[2], s[3], o[0], o[1], o[2], o[3]);
            }
        }

        /// <summary>
        /// Turns the raw scores of keys 0..visible into probabilities in place (masked keys get 0) and returns how many
        /// leading keys the probabilities span: visible, or every cached key when all visible ones are padding.
        /// </summary>
        private int Softmax(float* row, int visible, byte* mask)
        {
            var scores = new Span<float>(row, visible);
            TensorPrimitives.Multiply(scores, _scale, scores);
            if (mask is not null)
                for (int j = 0; j < visible; j++)
                    if (mask[j] == 0) scores[j] = float.NegativeInfinity;
            float max = TensorPrimitives.Max(scores);
            if (float.IsNegativeInfinity(max))
            {
                // Every key is masked. The reference adds float32.min to every score, which swamps the scores
                // themselves, so its softmax is uniform over all keys of the row: do the same.
                new Span<float>(row, _keyCount).Fill(1f / _keyCount);
                return _keyCount;
            }
            TensorPrimitives.Subtract(scores, max, scores);
            TensorPrimitives.Exp(scores, scores);
            TensorPrimitives.Multiply(scores, 1f / TensorPrimitives.Sum(scores), scores);
            return visible;
        }

        /// <summary>keysT[i·stride + j] = keys[j·d + i] for j &lt; count; the padding columns up to stride are zeroed.</summary>
        private static void Transpose(float* keys, int count, int d, float* keysT, int stride)
        {
            for (int i = 0; i < d; i++)
            {
                float* column = keysT + (long)i * stride;
                for (int j = 0; j < count; j++) column[j] = keys[(long)j * d + i];
                new Span<float>(column + count, stride - count).Clear();
            }
        }

        private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;
    }
}
