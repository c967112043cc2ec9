using SharpTune.Engine;

namespace SharpTune.Model;

/// <summary>
/// The key/value cache of a whole decoder for a batch of sequences, preallocated for Capacity positions,
/// plus the key padding mask: KeyMask[b·Capacity + j] is 1 when sequence b's position j is a real token.
/// </summary>
public sealed class KvCache
{
    public KvCacheLayer[] Layers { get; }
    public byte[] KeyMask { get; }
    public int Batch { get; }
    public int Capacity { get; }

    /// <summary>
    /// Leading entries a model tuner filled before the sequences (its virtual tokens or key/value prefix): the
    /// sequences' own positions are counted from here.
    /// </summary>
    public int Prefix { get; init; }

    /// <param name="backend">The backend that allocates and fills the layers' keys and values.</param>
    public KvCache(ModelConfig config, int batch, int capacity, IComputeBackend backend)
    {
        if (batch <= 0 || capacity <= 0) throw new ArgumentException("KV cache batch and capacity must be positive");
        Batch = batch;
        Capacity = capacity;
        Layers = new KvCacheLayer[config.NumLayers];
        for (int i = 0; i < Layers.Length; i++) Layers[i] = backend.AllocateCache(batch, config.NumKvHeads, config.HeadDim, capacity);
        KeyMask = new byte[batch * capacity];
    }

    /// <summary>Positions filled so far.</summary>
    public int Length => Layers[0].Length;

    public void Clear()
    {
        foreach (var layer in Layers) layer.Length = 0;
        Array.Clear(KeyMask);
    }
}
