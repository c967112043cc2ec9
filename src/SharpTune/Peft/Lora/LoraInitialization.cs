using SharpTune.Engine;
using SharpTune.IO;

namespace SharpTune.Peft.Lora;

/// <summary>
/// PEFT's initialisations that take the adapter from the base weight (init_lora_weights): "pissa" (the top r singular
/// triplets by an exact SVD), "pissa_niter_N" (torch.svd_lowrank with N subspace iterations; LLaMA-Factory's
/// pissa_init with pissa_iter N, −1 meaning exact) and "olora" (the thin QR of W). The base keeps the residual
/// W − s·B₀·A₀ (<see cref="MutatedInitLayer"/>).
/// </summary>
public static class LoraInitialization
{
    public const string Pissa = "pissa";
    public const string PissaIterationsPrefix = "pissa_niter_";
    public const string Olora = "olora";

    /// <summary>Whether init_lora_weights takes the adapter from the base weight (and so changes the base).</summary>
    public static bool MutatesBase(string? init) => init is not null && (init == Pissa || init == Olora || IsPissaIterations(init, out _));

    private static bool IsPissaIterations(string init, out int iterations)
    {
        iterations = 0;
        return init.StartsWith(PissaIterationsPrefix, StringComparison.Ordinal)
            && int.TryParse(init.AsSpan(PissaIterationsPrefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out iterations);
    }

    /// <summary>
    /// The initial (A₀ [r × in], B₀ [out × r]) of one Linear from its weight W [out × in]. PiSSA: W ≈ U·S·Vᵀ,
    /// A₀ = √(S/s)·Vᵀ, B₀ = U·√(S/s), so s·B₀·A₀ is W's best rank-r part; OLoRA: W = Q·R, A₀ = R's first r rows,
    /// B₀ = Q's first r columns. The randomized SVD draws its sketch from a generator seeded by the module path, so
    /// the same base gives the same initial adapter on every load.
    /// </summary>
    /// <exception cref="ArgumentException">An init this method does not name, or r larger than the weight's smaller side.</exception>
    public static (float[] A, float[] B) Initial(string init, float[] weight, int outFeatures, int inFeatures, int rank, float scaling,
        string modulePath, IComputeBackend backend)
    {
        if (rank > Math.Min(outFeatures, inFeatures))
            throw new ArgumentException($"{modulePath}: init_lora_weights {init} needs lora_rank ≤ {Math.Min(outFeatures, inFeatures)} (the weight is {outFeatures}×{inFeatures}), got {rank}");
        if (init == Olora)
        {
            var (q, r) = MatrixDecompositions.Qr(weight.Select(v => (double)v).ToArray(), outFeatures, inFeatures);
            int k = Math.Min(outFeatures, inFeatures);
            var a = new float[rank * inFeatures];
            for (int i = 0; i < rank; i++)
                for (int j = 0; j < inFeatures; j++) a[i * inFeatures + j] = (float)r[i * inFeatures + j];
            var b = new float[outFeatures * rank];
            for (int o = 0; o < outFeatures; o++)
                for (int j = 0; j < rank; j++) b[o * rank + j] = (float)q[o * k + j];
            return (a, b);
        }
        double[] u, s, v;
        if (init == Pissa)
            (u, s, v) = MatrixDecompositions.Svd(weight.Select(x => (double)x).ToArray(), outFeatures, inFeatures);
        else if (IsPissaIterations(init, out int iterations))
            (u, s, v) = MatrixDecompositions.RandomizedSvd(weight, outFeatures, inFeatures, rank, iterations, new SeededRandom(StableHash(modulePath)), backend);
        else
            throw new ArgumentException($"{modulePath}: init_lora_weights {MessageText.Quote(init)} is not one SharpTune computes (pissa, pissa_niter_N, olora)");
        int columns = s.Length;
        var aPissa = new float[rank * inFeatures];
        var bPissa = new float[outFeatures * rank];
        for (int i = 0; i < rank; i++)
        {
            double root = Math.Sqrt(s[i] / scaling);
            for (int j = 0; j < inFeatures; j++) aPissa[i * inFeatures + j] = (float)(root * v[j * columns + i]);
            for (int o = 0; o < outFeatures; o++) bPissa[o * rank + i] = (float)(u[o * columns + i] * root);
        }
        return (aPissa, bPissa);
    }

    /// <summary>FNV-1a of the module path: a seed that is the same in every process.</summary>
    private static ulong StableHash(string text)
    {
        ulong hash = 14695981039346656037;
        foreach (char c in text)
        {
            hash ^= c;
            hash *= 1099511628211;
        }
        return hash;
    }
}
