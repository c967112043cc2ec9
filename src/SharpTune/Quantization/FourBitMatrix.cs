using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using SharpTune.Engine;

namespace SharpTune.Quantization;

/// <summary>
/// A weight quantised to 4 bits the way bitsandbytes' <c>Linear4bit</c> / <c>functional.quantize_4bit</c> stores
/// it (QLoRA): the row-major weight is flattened and cut into blocks of 64 values; each block keeps its fp32
/// absmax and each value the NF4 or FP4 code of value · (1 / absmax), packed two per byte with the first value in
/// the high nibble. With double quantisation (<c>compress_statistics</c>) the absmax values minus their mean
/// (the offset) are themselves quantised with <see cref="BlockwiseQuantizer"/> and the signed dynamic map in
/// blocks of 256, keeping the offset and one fp32 absmax per 256 blocks. A value dequantises to
/// code · absmax, with absmax = dynamic[q] · absmax₂ + offset under double quantisation.
/// </summary>
public sealed unsafe class FourBitMatrix : TiledFrozenMatrix
{
    public const int BlockSize = 64;
    public const int AbsmaxBlockSize = 256;

    // Blocks quantised per task while building; a multiple of the double-quantisation block for tidy ranges.
    private const int BlocksPerQuantizeTask = 4096;

    private readonly byte[] _packed;
    private readonly float[] _absmax;            // per block; empty under double quantisation
    private readonly byte[] _quantizedAbsmax;    // per block under double quantisation
    private readonly float[] _absmaxScales;      // per 256 blocks under double quantisation
    private readonly float[] _codebook;

    [ThreadStatic] private static float[]? t_quantizeBuffer;

    private FourBitMatrix(int rows, int cols, FourBitType type, bool doubleQuantization, byte[] packed, float[] absmax,
        byte[] quantizedAbsmax, float[] absmaxScales, float absmaxOffset, OneDnnGemmKernel? bf16Kernel)
        : base(rows, cols, bf16Kernel)
    {
        Type = type;
        DoubleQuantization = doubleQuantization;
        _packed = packed;
        _absmax = absmax;
        _quantizedAbsmax = quantizedAbsmax;
        _absmaxScales = absmaxScales;
        AbsmaxOffset = absmaxOffset;
        _codebook = FourBitCodebook.For(type).ToArray();
    }

    public FourBitType Type { get; }
    public bool DoubleQuantization { get; }

    /// <summary>Number of 64-value blocks (the last may be partial).</summary>
    public int BlockCount => DoubleQuantization ? _quantizedAbsmax.Length : _absmax.Length;

    /// <summary>Codes, two per byte, value 2i in the high nibble of byte i.</summary>
    public ReadOnlySpan<byte> PackedCodes => _packed;

    /// <summary>The fp32 absmax per block; empty under double quantisation (see <see cref="BlockAbsmax"/>).</summary>
    public ReadOnlySpan<float> Absmax => _absmax;

    /// <summary>Double quantisation: each block's absmax − offset as a dynamic-map code.</summary>
    public ReadOnlySpan<byte> QuantizedAbsmax => _quantizedAbsmax;

    /// <summary>Double quantisation: the fp32 absmax of each 256-block group of (absmax − offset).</summary>
    public ReadOnlySpan<float> AbsmaxScales => _absmaxScales;

    /// <summary>Double quantisation: the mean of the block absmax values, subtracted before quantising them.</summary>
    public float AbsmaxOffset { get; }

    /// <summary>
    /// The <see cref="StorageBytes"/> of a rows×cols weight quantised by <see cref="Quantize"/>: packed codes, then
    /// an fp32 absmax per block, or under double quantisation a code per block, an fp32 scale per 256 blocks and the offset.
    /// </summary>
    public static long StorageBytesFor(int rows, int cols, bool doubleQuantization)
    {
        long count = (long)rows * cols;
        int blocks = BlockwiseQuantizer.BlockCount(count, BlockSize);
        return (count + 1) / 2 + (doubleQuantization
            ? blocks + 4L * BlockwiseQuantizer.BlockCount(blocks, AbsmaxBlockSize) + 4
            : 4L * blocks);
    }

    public override long StorageBytes =>
        _packed.LongLength + 4L * _absmax.LongLength + _quantizedAbsmax.LongLength + 4L * _absmaxScales.LongLength + (DoubleQuantization ? 4 : 0);

    /// <summary>The absmax block <paramref name="block"/> dequantises with (restored from the double-quant state).</summary>
    public float BlockAbsmax(int block) => DoubleQuantization
        ? DynamicMap.SignedShared[_quantizedAbsmax[block]] * _absmaxScales[block / AbsmaxBlockSize] + AbsmaxOffset
        : _absmax[block];

    /// <summary>
    /// Quantises a bf16/f16/f32 weight block range by block range; never widens the whole matrix. With
    /// <paramref name="bf16Kernel"/> the products run in bf16 (<see cref="TiledFrozenMatrix.Bf16Kernel"/>): each value
    /// code · absmax in fp32 rounded to bf16, as bitsandbytes' dequantize_4bit to a bf16 compute dtype.
    /// </summary>
    public static FourBitMatrix Quantize(WeightMatrix weight, FourBitType type, bool doubleQuantization, OneDnnGemmKernel? bf16Kernel = null)
    {
        if (weight.Rows <= 0 || weight.Cols <= 0)
            throw new ArgumentException($"cannot quantise a {weight.Rows}×{weight.Cols} weight");
        long count = (long)weight.Rows * weight.Cols;
        int blocks = BlockwiseQuantizer.BlockCount(count, BlockSize);
        var packed = new byte[(count + 1) / 2];
        var absmax = new float[blocks];

        int tasks = (blocks + BlocksPerQuantizeTask - 1) / BlocksPerQuantizeTask;
        GemmThreadPool.Shared.For(tasks, task =>
        {
            long first = (long)task * BlocksPerQuantizeTask * BlockSize;
            int length = (int)Math.Min((long)BlocksPerQuantizeTask * BlockSize, count - first);
            float[] buffer = t_quantizeBuffer ??= new float[BlocksPerQuantizeTask * BlockSize];
            Span<float> values = buffer.AsSpan(0, length);
            ReadFlat(weight, first, values);
            QuantizeRange(type, values, first, packed, absmax);
        });

        if (!doubleQuantization)
            return new FourBitMatrix(weight.Rows, weight.Cols, type, false, packed, absmax, [], [], 0f, bf16Kernel);

        // quantize_4bit(compress_statistics=True): offset = absmax.mean(); quantize_blockwise(absmax − offset, blocksize=256).
        double sum = 0;
        foreach (float value in absmax)
            sum += value;
        float offset = (float)(sum / blocks);
        for (int i = 0; i < absmax.Length; i++)
            absmax[i] -= offset;
        var quantizedAbsmax = new byte[blocks];
        var scales = new float[BlockwiseQuantizer.BlockCount(blocks, AbsmaxBlockSize)];
        BlockwiseQuantizer.Quantize(absmax, AbsmaxBlockSize, DynamicMap.SignedShared, quantizedAbsmax, scales);
        return new FourBitMatrix(weight.Rows, weight.Cols, type, true, packed, [], quantizedAbsmax, scales, offset, bf16Kernel);
    }

    /// <summary>Quantises whole blocks starting at flat element <paramref name="first"/> (a multiple of the block size).</summary>
    private static void QuantizeRange(FourBitType type, ReadOnlySpan<float> values, long first, byte[] packed, float[] absmax)
    {
        int firstBlock = (int)(first / BlockSize);
        for (int start = 0; start < values.Length; start += BlockSize)
        {
            ReadOnlySpan<float> block = values.Slice(start, Math.Min(BlockSize, values.Length - start));
            float max = BlockwiseQuantizer.AbsMax(block);
            absmax[firstBlock + start / BlockSize] = max;
            // As the kernel: multiply by the reciprocal; an all-zero block scales to NaN, which both decision trees
            // send to code 0b0000 (NF4 −1, FP4 +0) and which dequantises to ±0 with absmax 0.
            float reciprocal = 1f / max;
            long element = first + start;
            for (int i = 0; i < block.Length; i++, element++)
            {
                int code = FourBitCodebook.Quantize(type, block[i] * reciprocal);
                ref byte target = ref packed[element >> 1];
                target = (element & 1) == 0 ? (byte)(code << 4) : (byte)(target | code);
            }
        }
    }

    /// <summary>Flat elements [first, first + destination.Length) of a row-major weight, widened to fp32.</summary>
    private static void ReadFlat(WeightMatrix weight, long first, Span<float> destination)
    {
        switch (weight.DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>((float*)weight.Data + first, destination.Length).CopyTo(destination);
                break;
            case DType.BF16:
                BFloat16.ToSingle(new ReadOnlySpan<ushort>((ushort*)weight.Data + first, destination.Length), destination);
                break;
            default:
                Float16.ToSingle(new ReadOnlySpan<Half>((Half*)weight.Data + first, destination.Length), destination);
                break;
        }
    }

    protected override void DequantizeRows(int firstRow, int count, Span<float> destination)
    {
        long start = (long)firstRow * Cols;
        long end = start + (long)count * Cols;
        fixed (float* target = destination)
        fixed (byte* packed = _packed)
        fixed (float* codebook = _codebook)
        {
            long element = start;
            while (element < end)
            {
                int block = (int)(element / BlockSize);
                long segmentEnd = Math.Min(end, (long)(block + 1) * BlockSize);
                float scale = BlockAbsmax(block);
                DequantizeSegment(packed, codebook, scale, element, segmentEnd, target + (element - start));
                element = segmentEnd;
            }
        }
    }

    /// <summary>Elements [from, to) of one block: scalar up to a 32-element boundary, then 32 at a time.</summary>
    private static void DequantizeSegment(byte* packed, float* codebook, float scale, long from, long to, float* output)
    {
        long element = from;
        if (Avx512F.IsSupported || Avx2.IsSupported)
        {
            for (; element < to && (element & 31) != 0; element++)
                *output++ = Code(packed, codebook, element) * scale;
            for (; element + 32 <= to; element += 32, output += 32)
                Dequantize32(packed + (element >> 1), codebook, scale, output);
        }
        for (; element < to; element++)
            *output++ = Code(packed, codebook, element) * scale;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Code(byte* packed, float* codebook, long element)
    {
        int pair = packed[element >> 1];
        return codebook[(element & 1) == 0 ? pair >> 4 : pair & 0x0F];
    }

    /// <summary>
    /// 16 packed bytes → 32 values: split nibbles, interleave high/low so they come out in element order, widen to
    /// int32 indices and look the 16-entry code book up with a register permute.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dequantize32(byte* source, float* codebook, float scale, float* output)
    {
        Vector128<byte> bytes = Vector128.Load(source);
        Vector128<byte> high = Vector128.ShiftRightLogical(bytes, 4);
        Vector128<byte> low = bytes & Vector128.Create((byte)0x0F);
        Vector128<byte> first = Sse2.UnpackLow(high, low);
        Vector128<byte> second = Sse2.UnpackHigh(high, low);
        if (Avx512F.IsSupported)
        {
            Vector512<float> table = Vector512.Load(codebook);
            Vector512<float> factor = Vector512.Create(scale);
            (Avx512F.PermuteVar16x32(table, Avx512F.ConvertToVector512Int32(first)) * factor).Store(output);
            (Avx512F.PermuteVar16x32(table, Avx512F.ConvertToVector512Int32(second)) * factor).Store(output + 16);
        }
        else
        {
            Vector256<float> lowTable = Vector256.Load(codebook);
            Vector256<float> highTable = Vector256.Load(codebook + 8);
            Vector256<float> factor = Vector256.Create(scale);
            Lookup8(lowTable, highTable, factor, first, output);
            Lookup8(lowTable, highTable, factor, Sse2.ShiftRightLogical128BitLane(first, 8), output + 8);
            Lookup8(lowTable, highTable, factor, second, output + 16);
            Lookup8(lowTable, highTable, factor, Sse2.ShiftRightLogical128BitLane(second, 8), output + 24);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Lookup8(Vector256<float> lowTable, Vector256<float> highTable, Vector256<float> factor, Vector128<byte> codes, float* output)
    {
        Vector256<int> index = Avx2.ConvertToVector256Int32(codes);
        Vector256<float> fromLow = Avx2.PermuteVar8x32(lowTable, index);
        Vector256<float> fromHigh = Avx2.PermuteVar8x32(highTable, index);
        Vector256<float> selectHigh = Vector256.GreaterThan(index, Vector256.Create(7)).AsSingle();
        (Vector256.ConditionalSelect(selectHigh, fromHigh, fromLow) * factor).Store(output);
    }
}
