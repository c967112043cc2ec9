namespace SharpTune.Engine;

/// <summary>
/// Precomputed rotary-embedding inverse frequencies for one head size, in the "rotate_half" convention
/// Hugging Face uses for Qwen2/Llama: inv_freq[i] = 1 / theta^(2i/d), angle = position · inv_freq[i].
/// </summary>
public sealed class RopeTable
{
    public int HeadDim { get; }
    public float[] InverseFrequencies { get; }

    public RopeTable(int headDim, float[] inverseFrequencies)
    {
        if (headDim % 2 != 0) throw new ArgumentException($"rotary embedding needs an even head size, got {headDim}");
        if (inverseFrequencies.Length != headDim / 2)
            throw new ArgumentException($"expected {headDim / 2} inverse frequencies, got {inverseFrequencies.Length}");
        HeadDim = headDim;
        InverseFrequencies = inverseFrequencies;
    }

    /// <summary>
    /// cos and sin of position·inv_freq for the first half of a head. The angle is formed in float32, as torch
    /// does (inv_freq float32 × position float32), so results match the reference bit for bit in the angle.
    /// </summary>
    public void Angles(int position, Span<float> cos, Span<float> sin)
    {
        for (int i = 0; i < InverseFrequencies.Length; i++)
        {
            float angle = position * InverseFrequencies[i];
            cos[i] = MathF.Cos(angle);
            sin[i] = MathF.Sin(angle);
        }
    }
}
