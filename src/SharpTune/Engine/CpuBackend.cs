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

    public Tensor Allocate(params int[] shape) => new HostTensor(shape);

    /// <summary>
    /// The CPU backend's tensor: a host array that only this class reaches, so model and tuner code can touch
    /// activations only through the backend's operations and transfer calls, as they would a device's.
    /// </summary>
    private sealed class HostTensor : Tensor
    {
        public readonly float[] Data;

        public HostTensor(int[] shape) : base(shape) => Data = new float[Length];

        public Span<float> Row(int r) => Data.AsSpan(r * RowWidth, RowWidth);
    }

    /// <summary>A tensor of this backend, as its host array's owner.</summary>
    private static HostTensor Host(Tensor t) =>
        t as HostTensor ?? throw new ArgumentException($"a tensor of another backend ({t.GetType().Name}) was passed to the CPU backend");

    /// <summary>The host array behind a tensor of this backend.</summary>
    private static float[] H(Tensor t) => Host(t).Data;

    private static float[]? HOrNull(Tensor? t) => t is null ? null : H(t);

    public void CopyToHost(Tensor source, long sourceOffset, Span<float> destination) =>
        H(source).AsSpan(checked((int)sourceOffset), destination.Length).CopyTo(destination);

    public void CopyFromHost(ReadOnlySpan<float> source, Tensor destination, long destinationOffset) =>
        source.CopyTo(H(destination).AsSpan(checked((int)destinationOffset), source.Length));

    public void CopyRows(Tensor source, int sourceRow, Tensor destination, int destinationRow, int count)
    {
        int width = RowsWidth(source, destination);
        Array.Copy(H(source), (long)sourceRow * width, H(destination), (long)destinationRow * width, (long)count * width);
    }

    public void AddRows(Tensor source, int sourceRow, Tensor destination, int destinationRow, int count)
    {
        int width = RowsWidth(source, destination);
        var dst = H(destination).AsSpan(destinationRow * width, count * width);
        TensorPrimitives.Add(dst, H(source).AsSpan(sourceRow * width, count * width), dst);
    }

    public void AddRowsToParameter(Tensor source, int sourceRow, float[] parameterGrad, int parameterRow, int count)
    {
        int width = source.RowWidth;
        var dst = parameterGrad.AsSpan(parameterRow * width, count * width);
        TensorPrimitives.Add(dst, H(source).AsSpan(sourceRow * width, count * width), dst);
    }

    private static int RowsWidth(Tensor source, Tensor destination) =>
        source.RowWidth == destination.RowWidth ? source.RowWidth
            : throw new ArgumentException($"row copy: source rows are {source.RowWidth} wide, destination rows {destination.RowWidth}");

    public void ScaleRows(Tensor x, int row, int count, float factor)
    {
        var span = H(x).AsSpan(row * x.RowWidth, count * x.RowWidth);
        TensorPrimitives.Multiply(span, factor, span);
    }

    public void ClearRows(Tensor x, int row, int count) => Array.Clear(H(x), row * x.RowWidth, count * x.RowWidth);

    public void RowSums(Tensor x, Span<float> sums)
    {
        var data = H(x);
        int width = x.RowWidth;
        for (int r = 0; r < sums.Length; r++) sums[r] = TensorPrimitives.Sum(data.AsSpan(r * width, width));
    }

    public void Linear(Tensor x, int rows, WeightMatrix w, float[]? bias, Tensor y)
    {
        if (x.RowWidth != w.Cols) throw new ArgumentException($"linear: input width {x.RowWidth} but weight has {w.Cols} columns");
        if (y.RowWidth != w.Rows) throw new ArgumentException($"linear: output width {y.RowWidth} but weight has {w.Rows} rows");
        if (rows <= GemvMaxRows)
            Gemv(H(x), x.RowWidth, rows, w, H(y), y.RowWidth);
        else
            fixed (float* px = H(x), py = H(y))
                Gemm.GemmWeight(rows, px, x.RowWidth, w, 0f, py, y.RowWidth);
        if (bias is not null) AddBiasRows(H(y), y.RowWidth, rows, bias);
    }

    public void Linear(Tensor x, int rows, IFrozenMatrix w, float[]? bias, Tensor y)
    {
        if (x.RowWidth != w.Cols) throw new ArgumentException($"linear: input width {x.RowWidth} but weight has {w.Cols} columns");
        if (y.RowWidth != w.Rows) throw new ArgumentException($"linear: output width {y.RowWidth} but weight has {w.Rows} rows");
        w.MultiplyTransposed(H(x), rows, H(y));
        if (bias is not null) AddBiasRows(H(y), y.RowWidth, rows, bias);
    }

    private static void AddBiasRows(float[] y, int width, int rows, float[] bias)
    {
        for (int r = 0; r < rows; r++)
            TensorPrimitives.Add(y.AsSpan(r * width, width), bias, y.AsSpan(r * width, width));
    }

    public void LinearInputGradient(Tensor dy, int rows, IFrozenMatrix w, Tensor dx, bool accumulate) =>
        w.Multiply(H(dy), rows, H(dx), accumulate);

    private static void Gemv(float[] x, int xStride, int rows, WeightMatrix w, float[] y, int yStride)
    {
        var job = t_gemv ??= new GemvJob();
        fixed (float* px = x, py = y)
        {
            job.Set(px, xStride, rows, w, py, yStride);
            GemmThreadPool.Shared.For(job.Tasks, job.Body);
        }
    }

    public void Embedding(WeightMatrix table, ReadOnlySpan<int> ids, Tensor dst)
    {
        if (dst.RowWidth != table.Cols) throw new ArgumentException($"embedding: output width {dst.RowWidth} but table has {table.Cols} columns");
        var host = Host(dst);
        for (int i = 0; i < ids.Length; i++)
        {
            int id = ids[i];
            if ((uint)id >= (uint)table.Rows)
                throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is outside the vocabulary (0..{table.Rows - 1})");
            table.ReadRow(id, host.Row(i));
        }
    }

    public void Embedding(IFrozenMatrix table, ReadOnlySpan<int> ids, Tensor dst)
    {
        var host = Host(dst);
        for (int r = 0; r < ids.Length; r++) table.ReadRows(ids[r], 1, host.Row(r));
    }

    public void Embedding(float[] table, ReadOnlySpan<int> ids, Tensor dst)
    {
        int h = dst.RowWidth;
        var data = H(dst);
        for (int r = 0; r < ids.Length; r++) Array.Copy(table, (long)ids[r] * h, data, (long)r * h, h);
    }

    public void EmbeddingBackward(Tensor dOutput, ReadOnlySpan<int> ids, int width, float[] tableGrad)
    {
        var source = H(dOutput);
        for (int i = 0; i < ids.Length; i++)
        {
            var dst = tableGrad.AsSpan(ids[i] * width, width);
            TensorPrimitives.Add(dst, source.AsSpan(i * width, width), dst);
        }
    }

    public void RmsNorm(Tensor x, int groups, float[] weight, float eps, Tensor y, Tensor? inverseRms = null) =>
        TrainingKernels.RmsNormForward(H(x), groups, weight, eps, H(y), HOrNull(inverseRms));

    public void RmsNormBackward(Tensor x, Tensor dy, int groups, float[] weight, Tensor inverseRms, Tensor? dx, float[]? weightGrad) =>
        TrainingKernels.RmsNormBackward(H(x), H(dy), groups, weight, H(inverseRms), HOrNull(dx), weightGrad);

    public void Rope(Tensor x, int rows, int heads, RopeTable rope, ReadOnlySpan<int> positions, bool inverse = false) =>
        TrainingKernels.Rope(H(x), rows, heads, rope, positions, inverse);

    public void SiluMul(Tensor gate, Tensor up, int count, Tensor dst)
    {
        var job = t_siluMul ??= new SiluMulJob();
        job.Set(H(gate), H(up), H(dst), count);
        GemmThreadPool.Shared.For(job.Tasks, job.Body);
        job.Release();
    }

    public void SiluMulBackward(Tensor gate, Tensor up, Tensor dActivation, int count, Tensor dGate, Tensor dUp) =>
        TrainingKernels.SwiGluBackward(H(gate), H(up), H(dActivation), count, H(dGate), H(dUp));

    public void Add(Tensor dst, Tensor src, int count) => TrainingKernels.Add(H(dst), H(src), count);

    public void Sum(Tensor a, Tensor b, int count, Tensor dst) => TrainingKernels.Sum(H(a), H(b), count, H(dst));

    public void Multiply(Tensor a, Tensor b, int count, Tensor dst) =>
        TensorPrimitives.Multiply(H(a).AsSpan(0, count), H(b).AsSpan(0, count), H(dst).AsSpan(0, count));

    public void Subtract(Tensor a, Tensor b, int count, Tensor dst) =>
        TensorPrimitives.Subtract(H(a).AsSpan(0, count), H(b).AsSpan(0, count), H(dst).AsSpan(0, count));

    public void CopyColumns(Tensor source, int sourceOffset, Tensor destination, int destinationOffset, int rows, int width)
    {
        float[] src = H(source), dst = H(destination);
        int sourceWidth = source.RowWidth, destinationWidth = destination.RowWidth;
        for (int r = 0; r < rows; r++)
            Array.Copy(src, (long)r * sourceWidth + sourceOffset, dst, (long)r * destinationWidth + destinationOffset, width);
    }

    public void Linear(Tensor x, int rows, float[] weight, int inFeatures, int outFeatures, float[]? bias, Tensor y) =>
        TrainingKernels.LinearForward(Gemm, H(x), rows, inFeatures, weight, bias, outFeatures, H(y));

    public void LinearBackward(Tensor x, Tensor dy, int rows, float[] weight, int inFeatures, int outFeatures,
        float[]? weightGrad, float[]? biasGrad, Tensor? dx, bool accumulate) =>
        TrainingKernels.LinearBackward(Gemm, H(x), H(dy), rows, inFeatures, outFeatures, weight, weightGrad, biasGrad, HOrNull(dx), accumulate);

    public void NarrowProduct(Tensor x, int rows, int k, float[] y, int n, float alpha, Tensor c)
    {
        fixed (float* px = H(x), py = y, pc = H(c))
            SkinnyGemm.MultiplyTransposed(rows, n, k, alpha, px, k, py, k, 0f, pc, n);
    }

    public void MultiplyTransposed(Tensor a, int rows, int k, float[] b, int n, float alpha, float beta, Tensor c)
    {
        fixed (float* pa = H(a), pb = b, pc = H(c))
            Gemm.Sgemm(false, true, rows, n, k, alpha, pa, k, pb, k, beta, pc, n);
    }

    public void Multiply(Tensor a, int rows, int k, float[] b, int n, float alpha, float beta, Tensor c)
    {
        fixed (float* pa = H(a), pb = b, pc = H(c))
            Gemm.Sgemm(false, false, rows, n, k, alpha, pa, k, pb, n, beta, pc, n);
    }

    public void AddOuterProducts(Tensor a, Tensor b, int rows, int m, int n, float alpha, float[] grad)
    {
        fixed (float* pa = H(a), pb = H(b), pg = grad)
            Gemm.Sgemm(true, false, m, n, rows, alpha, pa, m, pb, n, 1f, pg, n);
    }

    public void AddBias(Tensor y, int rows, float[] bias) => TrainingKernels.AddBias(H(y), rows, bias, bias.Length);

    public void ColumnSums(Tensor values, int rows, float[] sums) => TrainingKernels.ColumnSums(H(values), rows, sums.Length, sums);

    public void ScaleColumns(Tensor x, int rows, float[] factors, Tensor dst)
    {
        float[] src = H(x), result = H(dst);
        int width = factors.Length;
        for (int r = 0; r < rows; r++)
            TensorPrimitives.Multiply(src.AsSpan(r * width, width), factors, result.AsSpan(r * width, width));
    }

    public void AddColumnProducts(Tensor a, Tensor b, int rows, float[] grad)
    {
        float[] x = H(a), y = H(b);
        int width = grad.Length;
        for (int r = 0; r < rows; r++)
        {
            var xr = x.AsSpan(r * width, width);
            var yr = y.AsSpan(r * width, width);
            for (int i = 0; i < width; i++) grad[i] += xr[i] * yr[i];
        }
    }

    public void Activate(ActivationFunction function, Tensor z, int count, Tensor a)
    {
        float[] input = H(z), output = H(a);
        for (int i = 0; i < count; i++) output[i] = function == ActivationFunction.Relu ? MathF.Max(input[i], 0f) : input[i] / (1f + MathF.Exp(-input[i]));
    }

    public void MultiplyByDerivative(ActivationFunction function, Tensor z, int count, Tensor d)
    {
        float[] input = H(z), gradient = H(d);
        for (int i = 0; i < count; i++) gradient[i] *= Derivative(function, input[i]);
    }

    private static float Derivative(ActivationFunction function, float z)
    {
        if (function == ActivationFunction.Relu) return z > 0f ? 1f : 0f;
        float sigmoid = 1f / (1f + MathF.Exp(-z));
        return sigmoid * (1f + z * (1f - sigmoid));
    }

    public void DoraCombine(Tensor y, Tensor lora, Tensor? baseProduct, float[]? bias, int rows, float[] scale, float[] norm, Tensor? magnitudeInput)
    {
        float[] output = H(y), low = H(lora);
        float[]? product = HOrNull(baseProduct), kept = HOrNull(magnitudeInput);
        int outFeatures = scale.Length;
        for (int r = 0; r < rows; r++)
        {
            int row = r * outFeatures;
            for (int o = 0; o < outFeatures; o++)
            {
                int i = row + o;
                float baseResult = product is not null ? product[i] : bias is null ? output[i] : output[i] - bias[o];
                if (kept is not null) kept[i] = (baseResult + low[i]) / norm[o];
                output[i] += (scale[o] - 1f) * baseResult + scale[o] * low[i];
            }
        }
    }

    public void AttentionForward(AttentionShape shape, AttentionSequences sequences, Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp) =>
        AttentionKernels.Forward(shape, sequences, H(q), H(k), H(v), H(output), H(logSumExp));

    public void AttentionBackward(AttentionShape shape, AttentionSequences sequences, Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp,
        Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, Tensor keyScratch, Tensor valueScratch) =>
        AttentionKernels.Backward(shape, sequences, H(q), H(k), H(v), H(output), H(logSumExp), H(dOutput), H(dq), H(dk), H(dv), H(keyScratch), H(valueScratch));

    public void LabelLogProbs(Tensor logits, int rows, int vocab, int[] targets, int offset, double[] logProbs,
        Func<int, double, float>? gradient) =>
        TrainingKernels.LabelLogProbs(H(logits), rows, vocab, targets, offset, logProbs, gradient);

    public KvCacheLayer AllocateCache(int batch, int kvHeads, int headDim, int capacity)
    {
        long size = (long)batch * kvHeads * capacity * headDim;
        if (size > Array.MaxLength) throw new ArgumentException($"KV cache of {size} floats per layer is too large; lower the maximum length");
        int[] shape = [batch * kvHeads * capacity, headDim];
        return new KvCacheLayer(batch, kvHeads, headDim, capacity, Allocate(shape), Allocate(shape));
    }

    public void AppendToCache(KvCacheLayer cache, Tensor k, Tensor v, int newTokens)
    {
        if (cache.Length + newTokens > cache.Capacity)
            throw new InvalidOperationException($"KV cache full: {cache.Length} + {newTokens} positions exceed its capacity of {cache.Capacity}");
        float[] keys = H(cache.Keys), values = H(cache.Values), newKeys = H(k), newValues = H(v);
        int headDim = cache.HeadDim, width = cache.KvHeads * headDim;
        for (int b = 0; b < cache.Batch; b++)
            for (int t = 0; t < newTokens; t++)
            {
                int row = (b * newTokens + t) * width;
                for (int h = 0; h < cache.KvHeads; h++)
                {
                    int dst = cache.Offset(b, h, cache.Length + t);
                    Array.Copy(newKeys, row + h * headDim, keys, dst, headDim);
                    Array.Copy(newValues, row + h * headDim, values, dst, headDim);
                }
            }
        cache.Length += newTokens;
    }

    public void Attention(Tensor q, KvCacheLayer cache, int batch, int newTokens, byte[] mask, int maskStride, Tensor output)
    {
        var job = t_attention ??= new AttentionJob();
        fixed (float* pq = H(q), po = H(output), pk = H(cache.Keys), pv = H(cache.Values))
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
