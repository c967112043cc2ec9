using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SharpTune.Data.Cleaning;

/// <summary>What near-deduplication cuts a text into: runs of characters (any language, Chinese has no spaces) or of words.</summary>
public enum ShingleUnit
{
    Character,
    Word,
}

/// <summary>
/// MinHash signatures, datasketch's scheme: each token's 32-bit hash h goes through <c>NumPerm</c> permutations
/// <c>(a·h + b) mod (2^61 − 1)</c>, keeping the low 32 bits, and the signature is the minimum per permutation; the share
/// of equal positions in two signatures estimates the Jaccard similarity of the token sets (standard error
/// √(J(1−J)/NumPerm)). Two deliberate differences: a and b are drawn below 2^32 (from SplitMix64, seed 1) rather than
/// below the prime, so a·h + b fits 64 bits exactly (datasketch's numpy product wraps silently) and four permutations
/// run per AVX2 instruction; and tokens are hashed by FNV-1a + MurmurHash3's finaliser rather than SHA-1, which costs
/// ~100× more per shingle and buys nothing here. Signatures are therefore not interchangeable with datasketch's.
/// </summary>
public sealed class MinHash
{
    public const ulong MersennePrime = (1UL << 61) - 1;

    private readonly ulong[] multipliers;
    private readonly ulong[] offsets;

    public MinHash(int numPerm, ulong seed = 1)
    {
        if (numPerm < 1) throw new ArgumentException($"--num-perm must be at least 1, got {numPerm}");
        multipliers = new ulong[numPerm];
        offsets = new ulong[numPerm];
        ulong state = seed;
        for (int i = 0; i < numPerm; i++)
        {
            multipliers[i] = 1 + SplitMix64(ref state) % uint.MaxValue;
            offsets[i] = SplitMix64(ref state) & uint.MaxValue;
        }
    }

    public int NumPerm => multipliers.Length;

    /// <summary>The signature of a set of token hashes (repeats change nothing); every position is uint.MaxValue for no tokens.</summary>
    public uint[] Signature(ReadOnlySpan<uint> tokens)
    {
        int n = NumPerm;
        Span<ulong> minimum = n <= 1024 ? stackalloc ulong[n] : new ulong[n];
        minimum.Fill(uint.MaxValue);
        int vectorEnd = Avx2.IsSupported ? n - n % 4 : 0;
        foreach (uint token in tokens)
        {
            if (vectorEnd > 0) MinimiseAvx2(token, minimum[..vectorEnd]);
            for (int i = vectorEnd; i < n; i++)
                minimum[i] = Math.Min(minimum[i], Permute(token, multipliers[i], offsets[i]));
        }
        var signature = new uint[n];
        for (int i = 0; i < n; i++) signature[i] = (uint)minimum[i];
        return signature;
    }

    /// <summary>The share of equal positions: MinHash's estimate of the Jaccard similarity.</summary>
    public static double EstimateJaccard(ReadOnlySpan<uint> a, ReadOnlySpan<uint> b)
    {
        if (a.Length != b.Length) throw new ArgumentException("signatures of different lengths");
        int equal = 0;
        for (int i = 0; i < a.Length; i++) if (a[i] == b[i]) equal++;
        return (double)equal / a.Length;
    }

    /// <summary>One permutation, scalar: a, b, h &lt; 2^32, so a·h + b &lt; 2^64 and the Mersenne reduction is a fold.</summary>
    internal static ulong Permute(uint token, ulong multiplier, ulong offset)
    {
        ulong x = multiplier * token + offset;
        x = (x & MersennePrime) + (x >> 61);
        if (x >= MersennePrime) x -= MersennePrime;
        return x & uint.MaxValue;
    }

    private void MinimiseAvx2(uint token, Span<ulong> minimum)
    {
        var h = Vector256.Create((ulong)token).AsUInt32();
        var prime = Vector256.Create(MersennePrime);
        var primeMinusOne = Vector256.Create((long)MersennePrime - 1);
        var low32 = Vector256.Create((ulong)uint.MaxValue);
        for (int i = 0; i < minimum.Length; i += 4)
        {
            // pmuludq multiplies the low 32 bits of each 64-bit lane into a 64-bit product: a·h exactly.
            var x = Avx2.Add(Avx2.Multiply(Vector256.Create(multipliers[i], multipliers[i + 1], multipliers[i + 2], multipliers[i + 3]).AsUInt32(), h),
                Vector256.Create(offsets[i], offsets[i + 1], offsets[i + 2], offsets[i + 3]));
            x = Avx2.Add(Avx2.And(x, prime), Avx2.ShiftRightLogical(x, 61));
            // x < 2^62 here, so the signed compare is exact.
            var overflow = Avx2.CompareGreaterThan(x.AsInt64(), primeMinusOne).AsUInt64();
            x = Avx2.And(Avx2.Subtract(x, Avx2.And(overflow, prime)), low32);
            var current = Vector256.Create(minimum[i], minimum[i + 1], minimum[i + 2], minimum[i + 3]);
            var smaller = Avx2.CompareGreaterThan(current.AsInt64(), x.AsInt64()).AsUInt64();
            Avx2.BlendVariable(current, x, smaller).CopyTo(minimum[i..]);
        }
    }

    private static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}

/// <summary>Cuts normalised text into n-gram shingles and hashes each to 32 bits.</summary>
public static class Shingles
{
    /// <summary>
    /// The hashes of every n-gram of Unicode characters (code points) or of space-separated words; a text shorter than
    /// n is one shingle, an empty text none.
    /// </summary>
    public static uint[] Hashes(string normalized, ShingleUnit unit, int n)
    {
        if (n < 1) throw new ArgumentException($"--ngram must be at least 1, got {n}");
        ulong[] units = unit == ShingleUnit.Character
            ? normalized.EnumerateRunes().Select(r => (ulong)r.Value).ToArray()
            : normalized.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(WordHash).ToArray();
        if (units.Length == 0) return [];
        int count = Math.Max(1, units.Length - n + 1);
        var hashes = new uint[count];
        for (int start = 0; start < count; start++)
        {
            ulong h = 0xCBF29CE484222325;
            for (int i = start; i < Math.Min(start + n, units.Length); i++) h = (h ^ units[i]) * 0x100000001B3;
            hashes[start] = (uint)(Finalize(h) >> 32);
        }
        return hashes;
    }

    private static ulong WordHash(string word)
    {
        ulong h = 0xCBF29CE484222325;
        foreach (char c in word) h = (h ^ c) * 0x100000001B3;
        return Finalize(h);
    }

    /// <summary>MurmurHash3's fmix64: FNV-1a alone leaves its high bits poorly mixed.</summary>
    private static ulong Finalize(ulong h)
    {
        h ^= h >> 33;
        h *= 0xFF51AFD7ED558CCD;
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53;
        return h ^ (h >> 33);
    }
}
