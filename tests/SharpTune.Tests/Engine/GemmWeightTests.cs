using SharpTune.Engine;
using static SharpTune.Tests.Engine.GemmTestSupport;

namespace SharpTune.Tests.Engine;

public unsafe class GemmWeightTests
{
    [Theory]
    [GemmKernelData("managed-avx512"), GemmKernelData("managed-avx2"), GemmKernelData("managed-scalar"), GemmKernelData("onednn"), GemmKernelData("openblas")]
    public void GemmWeight_F32_Bf16_F16_MatchReference(string name)
    {
        var kernel = Get(name);
        foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16 })
            foreach (var (m, n, k) in new[] { (1, 45, 37), (5, 300, 260), (64, 70, 96), (33, 600, 129) })
                foreach (float beta in new[] { 0f, 1f })
                    Check(kernel, dtype, m, n, k, beta);
    }

    [Theory]
    [GemmKernelData("managed-avx512"), GemmKernelData("managed-avx2"), GemmKernelData("managed-scalar"), GemmKernelData("onednn"), GemmKernelData("openblas")]
    public void GemmWeightInput_F32_Bf16_F16_MatchReference(string name)
    {
        var kernel = Get(name);
        foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16 })
            foreach (var (m, n, k) in new[] { (1, 45, 37), (5, 300, 260), (64, 70, 96), (33, 600, 129) })
                foreach (float beta in new[] { 0f, 1f })
                    CheckInput(kernel, dtype, m, n, k, beta);
    }

    /// <summary>Every binary16 bit pattern through the widening pack: y = x·Wᵀ with x = e₀ copies column 0 of W.</summary>
    [Theory]
    [GemmKernelData("managed-avx512"), GemmKernelData("managed-avx2"), GemmKernelData("managed-scalar"), GemmKernelData("onednn"), GemmKernelData("openblas")]
    public void GemmWeight_F16_WidensEveryBitPatternExactly(string name)
    {
        var kernel = Get(name);
        const int n = 65536, k = 8;
        var w = new ushort[n * k];
        for (int j = 0; j < n; j++) w[j * k] = (ushort)j;
        using var x = new NativeFloats(k, 0, 0f, random: false);
        x.Ptr[0] = 1f;
        using var y = new NativeFloats(n, 0, float.NaN, random: false);
        fixed (ushort* pw = w)
            kernel.GemmWeight(1, x.Ptr, k, new WeightMatrix(pw, DType.F16, n, k), 0f, y.Ptr, n);
        for (int j = 0; j < n; j++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)j);
            float actual = y.Ptr[j];
            if (float.IsNaN(expected))
                Assert.True(float.IsNaN(actual), $"half 0x{j:X4} should widen to NaN, got {actual}");
            else
                Assert.True(expected == actual, $"half 0x{j:X4}: expected {expected}, got {actual}");
        }
    }

    /// <summary>dx[m×k] = dy[m×n] · W for W stored n×k in dtype, against the reference on the widened values.</summary>
    private static void CheckInput(IGemmKernel kernel, DType dtype, int m, int n, int k, float beta)
    {
        int lddy = n + 3, lddx = k + 2;
        using var dy = new NativeFloats((long)m * lddy, m + n + 1);
        using var wf = new NativeFloats((long)n * k, k + 1);
        using var dx = new NativeFloats((long)m * lddx, 9);
        using var dx0 = new NativeFloats((long)m * lddx, 9);
        var stored = Store(dtype, wf);
        fixed (ushort* ps = stored)
        {
            void* data = dtype == DType.F32 ? wf.Ptr : ps;
            kernel.GemmWeightInput(m, dy.Ptr, lddy, new WeightMatrix(data, dtype, n, k), beta, dx.Ptr, lddx);
        }
        AssertGemm(false, false, m, k, n, 1f, dy.Ptr, lddy, wf.Ptr, k, beta, dx0.Ptr, dx.Ptr, lddx);
    }

    /// <summary>The weight's values in dtype's storage; wf is rounded to what that storage holds.</summary>
    private static ushort[] Store(DType dtype, NativeFloats wf)
    {
        var stored = new ushort[wf.Span.Length];
        switch (dtype)
        {
            case DType.BF16:
                BFloat16.FromSingle(wf.Span, stored);
                BFloat16.ToSingle(stored, wf.Span);
                break;
            case DType.F16:
                var halves = new Half[stored.Length];
                Float16.FromSingle(wf.Span, halves);
                Float16.ToSingle(halves, wf.Span);
                for (int i = 0; i < halves.Length; i++) stored[i] = BitConverter.HalfToUInt16Bits(halves[i]);
                break;
        }
        return stored;
    }

    private static void Check(IGemmKernel kernel, DType dtype, int m, int n, int k, float beta)
    {
        int ldx = k + 3, ldy = n + 2;
        using var x = new NativeFloats((long)m * ldx, m + n);
        using var wf = new NativeFloats((long)n * k, k);
        using var y = new NativeFloats((long)m * ldy, 7, beta == 0f ? float.NaN : 0f, random: beta != 0f);
        using var y0 = new NativeFloats((long)m * ldy, 7, beta == 0f ? float.NaN : 0f, random: beta != 0f);
        var stored = Store(dtype, wf);
        fixed (ushort* ps = stored)
        {
            void* data = dtype == DType.F32 ? wf.Ptr : ps;
            kernel.GemmWeight(m, x.Ptr, ldx, new WeightMatrix(data, dtype, n, k), beta, y.Ptr, ldy);
        }
        if (beta == 0f)
        {
            // Padding columns keep their NaN; the reference sees zeros for the (ignored) old values.
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) y0.Ptr[(long)i * ldy + j] = 0f;
            for (int i = 0; i < m; i++)
                for (int j = n; j < ldy; j++) Assert.True(float.IsNaN(y.Ptr[(long)i * ldy + j]), "padding of y was written");
            for (int i = 0; i < m; i++)
                for (int j = n; j < ldy; j++) y.Ptr[(long)i * ldy + j] = 0f;
            for (int i = 0; i < m; i++)
                for (int j = n; j < ldy; j++) y0.Ptr[(long)i * ldy + j] = 0f;
        }
        AssertGemm(false, true, m, n, k, 1f, x.Ptr, ldx, wf.Ptr, k, beta, y0.Ptr, y.Ptr, ldy);
    }
}
