namespace SharpTune.Foundation;

/// <summary>
/// A small, fast, seedable generator (xoshiro256**, seeded through splitmix64) whose whole state can be saved in a
/// checkpoint and restored, so a resumed run draws exactly the numbers the uninterrupted run would have drawn.
/// </summary>
public sealed class SeededRandom
{
    private ulong _s0, _s1, _s2, _s3;

    public SeededRandom(ulong seed)
    {
        ulong x = seed;
        _s0 = SplitMix(ref x);
        _s1 = SplitMix(ref x);
        _s2 = SplitMix(ref x);
        _s3 = SplitMix(ref x);
    }

    private SeededRandom(ulong[] state) => State = state;

    public static SeededRandom FromState(ulong[] state) => new(state);

    /// <summary>The four state words, for checkpoints.</summary>
    public ulong[] State
    {
        get => [_s0, _s1, _s2, _s3];
        set
        {
            if (value.Length != 4 || (value[0] | value[1] | value[2] | value[3]) == 0)
                throw new ArgumentException("a generator state is four words, not all zero");
            (_s0, _s1, _s2, _s3) = (value[0], value[1], value[2], value[3]);
        }
    }

    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 24 random bits.</summary>
    public float NextFloat() => (NextUInt64() >> 40) * (1f / (1 << 24));

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, bound), without modulo bias.</summary>
    public int NextInt(int bound)
    {
        if (bound <= 0) throw new ArgumentOutOfRangeException(nameof(bound));
        ulong limit = ulong.MaxValue - ulong.MaxValue % (ulong)bound;
        ulong r;
        do r = NextUInt64(); while (r >= limit);
        return (int)(r % (ulong)bound);
    }

    /// <summary>Standard normal (Box–Muller).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble();
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>Fisher–Yates shuffle in place.</summary>
    public void Shuffle<T>(IList<T> items)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
