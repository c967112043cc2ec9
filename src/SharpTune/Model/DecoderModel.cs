using SharpTune.Engine;
using SharpTune.IO.Safetensors;

namespace SharpTune.Model;

/// <summary>
/// The decoder-only transformer shared by Qwen2 (Qwen1.5/2/2.5), Llama and Qwen3: embedding, N layers of
/// pre-norm grouped-query attention and SwiGLU MLP with residuals, final RMSNorm, lm_head.
/// Computes in fp32 on weights kept in their stored dtype.
/// </summary>
public sealed class DecoderModel : IDisposable
{
    public ModelConfig Config { get; }
    public DecoderWeights Weights { get; }
    public IComputeBackend Backend { get; }
    public string Directory { get; }
    private readonly RopeTable _rope;
    private Workspace? _workspace;

    private DecoderModel(string directory, ModelConfig config, DecoderWeights weights, IComputeBackend backend)
    {
        Directory = directory;
        Config = config;
        Weights = weights;
        Backend = backend;
        _rope = RopeScaling.BuildTable(config);
    }

    public static DecoderModel Load(string directory, IComputeBackend? backend = null)
    {
        ModelFolder.Validate(directory);
        var config = ModelConfig.Load(ModelFolder.ConfigPath(directory));
        var checkpoint = SafetensorsCheckpoint.OpenDirectory(directory);
        try
        {
            var weights = DecoderWeights.Load(checkpoint, config, directory);
            return new DecoderModel(directory, config, weights, backend ?? CpuBackend.CreateDefault());
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    public KvCache CreateCache(int batch, int capacity) => new(Config, batch, capacity);

    /// <summary>
    /// Runs newTokens tokens of each of batch sequences through the decoder, appending their keys and values to
    /// the cache. ids, positions and mask are [batch × newTokens] (mask 1 = real token, 0 = padding).
    /// Writes the final-norm hidden states [batch·newTokens × hidden] into hidden.
    /// </summary>
    public void Forward(ReadOnlySpan<int> ids, ReadOnlySpan<int> positions, ReadOnlySpan<byte> mask, int batch, int newTokens, KvCache cache, Tensor hidden)
    {
        int rows = batch * newTokens;
        if (ids.Length != rows || positions.Length != rows || mask.Length != rows)
            throw new ArgumentException($"forward: expected {rows} ids, positions and mask values for batch {batch} × {newTokens} tokens");
        if (cache.Batch != batch) throw new ArgumentException($"forward: cache holds {cache.Batch} sequences, batch is {batch}");
        if (cache.Length + newTokens > cache.Capacity)
            throw new InvalidOperationException($"sequence length {cache.Length + newTokens} exceeds the KV cache capacity {cache.Capacity}");

        for (int b = 0; b < batch; b++)
            mask.Slice(b * newTokens, newTokens).CopyTo(cache.KeyMask.AsSpan(b * cache.Capacity + cache.Length, newTokens));

        var c = Config;
        var w = WorkspaceFor(rows);
        var be = Backend;
        be.Embedding(Weights.Embedding, ids, w.Residual);
        for (int l = 0; l < c.NumLayers; l++)
        {
            var L = Weights.Layers[l];
            be.RmsNorm(w.Residual, rows, L.InputNorm, c.RmsNormEps, w.Normed);
            be.Linear(w.Normed, rows, L.QProj, L.QBias, w.Query);
            be.Linear(w.Normed, rows, L.KProj, L.KBias, w.Key);
            be.Linear(w.Normed, rows, L.VProj, L.VBias, w.Value);
            if (L.QNorm is not null && L.KNorm is not null)
            {
                be.RmsNorm(w.Query, rows, L.QNorm, c.RmsNormEps, w.Query);
                be.RmsNorm(w.Key, rows, L.KNorm, c.RmsNormEps, w.Key);
            }
            be.ApplyRope(w.Query, rows, c.NumHeads, _rope, positions);
            be.ApplyRope(w.Key, rows, c.NumKvHeads, _rope, positions);
            cache.Layers[l].Append(w.Key, w.Value, newTokens);
            be.Attention(w.Query, cache.Layers[l], batch, newTokens, cache.KeyMask, cache.Capacity, w.Attention);
            be.Linear(w.Attention, rows, L.OProj, L.OBias, w.Projected);
            be.AddInPlace(w.Residual, w.Projected, rows);

            be.RmsNorm(w.Residual, rows, L.PostAttentionNorm, c.RmsNormEps, w.Normed);
            be.Linear(w.Normed, rows, L.GateProj, L.GateBias, w.Gate);
            be.Linear(w.Normed, rows, L.UpProj, L.UpBias, w.Up);
            be.SiluMul(w.Gate, w.Up, rows, w.Gate);
            be.Linear(w.Gate, rows, L.DownProj, L.DownBias, w.Projected);
            be.AddInPlace(w.Residual, w.Projected, rows);
        }
        be.RmsNorm(w.Residual, rows, Weights.FinalNorm, c.RmsNormEps, hidden);
    }

    /// <summary>logits[rows × vocab] = hidden · lm_headᵀ for the first rows rows.</summary>
    public void Logits(Tensor hidden, int rows, Tensor logits) => Backend.Linear(hidden, rows, Weights.LmHead, null, logits);

    /// <summary>
    /// A full forward pass over a padded batch ([B][T] ids and attention mask), positions 0..T-1 in every row as
    /// transformers uses when no position_ids are given. Returns last hidden states [B,T,H] and logits [B,T,V].
    /// </summary>
    public (Tensor Hidden, Tensor Logits) Evaluate(int[][] inputIds, int[][] attentionMask)
    {
        int batch = inputIds.Length;
        if (batch == 0) throw new ArgumentException("input_ids is empty");
        int t = inputIds[0].Length;
        if (t == 0 || inputIds.Any(r => r.Length != t)) throw new ArgumentException("every row of input_ids must have the same, non-zero length");
        if (attentionMask.Length != batch || attentionMask.Any(r => r.Length != t))
            throw new ArgumentException("attention_mask must have the same shape as input_ids");
        var ids = new int[batch * t];
        var positions = new int[batch * t];
        var mask = new byte[batch * t];
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < t; i++)
            {
                ids[b * t + i] = inputIds[b][i];
                positions[b * t + i] = i;
                int m = attentionMask[b][i];
                if (m is not (0 or 1)) throw new ArgumentException($"attention_mask[{b}][{i}] is {m}; it must be 0 or 1");
                mask[b * t + i] = (byte)m;
            }
        var cache = CreateCache(batch, t);
        var hidden = new Tensor(batch, t, Config.HiddenSize);
        Forward(ids, positions, mask, batch, t, cache, hidden);
        var logits = new Tensor(batch, t, Config.VocabSize);
        Logits(hidden, batch * t, logits);
        return (hidden, logits);
    }

    private Workspace WorkspaceFor(int rows)
    {
        if (_workspace is null || _workspace.Rows < rows) _workspace = new Workspace(Config, rows);
        return _workspace;
    }

    public void Dispose() => Weights.Dispose();

    /// <summary>Activation buffers of one forward pass, sized for a number of rows and reused while it suffices.</summary>
    private sealed class Workspace(ModelConfig c, int rows)
    {
        public int Rows { get; } = rows;
        public Tensor Residual { get; } = new(rows, c.HiddenSize);
        public Tensor Normed { get; } = new(rows, c.HiddenSize);
        public Tensor Query { get; } = new(rows, c.QueryWidth);
        public Tensor Key { get; } = new(rows, c.KvWidth);
        public Tensor Value { get; } = new(rows, c.KvWidth);
        public Tensor Attention { get; } = new(rows, c.QueryWidth);
        public Tensor Projected { get; } = new(rows, c.HiddenSize);
        public Tensor Gate { get; } = new(rows, c.IntermediateSize);
        public Tensor Up { get; } = new(rows, c.IntermediateSize);
    }
}
