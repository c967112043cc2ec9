using System.Runtime.InteropServices;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Quantization;

namespace SharpTune.Model;

/// <summary>
/// The decoder-only transformer shared by Qwen2 (Qwen1.5/2/2.5), Llama and Qwen3: embedding, N layers of
/// pre-norm grouped-query attention and SwiGLU MLP with residuals, final RMSNorm, lm_head.
/// Computes in fp32 on weights kept in their stored dtype.
/// Adapters can be applied unmerged (<see cref="ApplyAdapter"/>): each wrapped projection then runs its tuner layers
/// (<see cref="ILinearTuner"/>, an evaluation pass) after the base product, and modules_to_save tensors replace the
/// base tensors they name; the checkpoint itself is never modified.
/// </summary>
public sealed class DecoderModel : IDisposable
{
    public ModelConfig Config { get; }
    public DecoderWeights Weights { get; }
    public IComputeBackend Backend { get; }
    public string Directory { get; }
    /// <summary>How the layers' projections are quantised, or null when they are used as stored.</summary>
    public QuantizationOptions? Quantization { get; }
    /// <summary>The adapters applied so far, in the order they were applied.</summary>
    public IReadOnlyList<IModelAdapter> Adapters => _adapters;
    private readonly List<IModelAdapter> _adapters = [];
    private readonly RopeTable _rope;
    private Workspace? _workspace;

    // The tensors the forward pass reads: the checkpoint's views until an adapter replaces one or adds deltas.
    private WeightMatrix _embedding;
    private readonly Projection _lmHead;
    private float[] _finalNorm;
    private readonly LayerTensors[] _layers;
    // Replacement matrices live on the pinned heap so their WeightMatrix views stay valid; held here to keep them alive.
    private readonly List<float[]> _pinnedReplacements = [];
    // Copies of the streamed matrices in huge pages, where the kernel offers them; null otherwise.
    private readonly HugePageArena? _hugePages;

    private DecoderModel(string directory, ModelConfig config, DecoderWeights weights, IComputeBackend backend, QuantizationOptions? quantization)
    {
        Quantization = quantization;
        Directory = directory;
        Config = config;
        Weights = weights;
        Backend = backend;
        _rope = RopeScaling.BuildTable(config);
        _embedding = weights.Embedding;
        _lmHead = new Projection(weights.LmHead, null);
        _finalNorm = weights.FinalNorm;
        _layers = weights.Layers.Select(l => new LayerTensors(l, quantization)).ToArray();
        if (quantization is null && HugePageArena.IsSupported) _hugePages = MoveIntoHugePages();
    }

    /// <summary>
    /// Copies the matrices every token streams (the layers' projections and lm_head, with the embedding when it is
    /// tied) into huge pages: decoding is bound by reading them, and reads through the mapped file's 4 KiB pages
    /// were ~15–30% slower (see <see cref="HugePageArena"/>). The values are the checkpoint's, bit for bit. A model that
    /// would take more than half the available memory stays on its mapping (null).
    /// </summary>
    private HugePageArena? MoveIntoHugePages()
    {
        var projections = _layers.SelectMany(l => new[] { l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down }).Append(_lmHead).ToList();
        long bytes = projections.Sum(p => HugePageArena.SizeOf(p.Weight));
        if (!HugePageArena.Affords(bytes)) return null;
        var arena = new HugePageArena(bytes);
        bool tied;
        unsafe { tied = _lmHead.Weight.Data == _embedding.Data; }
        // At construction every projection is still a view into the mapped checkpoint, so its pages can be released.
        foreach (var p in projections) p.Weight = arena.CopyIn(p.Weight, releaseMappedSource: true);
        if (tied) _embedding = _lmHead.Weight;
        return arena;
    }

    /// <summary>
    /// Loads a model folder and applies the adapters (PEFT folders) in <paramref name="adapterDirectories"/> in order, unmerged.
    /// With quantization the layers' projections are quantised on load (embedding, lm_head and norms never are).
    /// </summary>
    public static DecoderModel Load(string directory, IComputeBackend? backend = null, IReadOnlyList<string>? adapterDirectories = null,
        QuantizationOptions? quantization = null)
    {
        ModelFolder.Validate(directory);
        var config = ModelConfig.Load(ModelFolder.ConfigPath(directory));
        var checkpoint = SafetensorsCheckpoint.OpenDirectory(directory);
        DecoderModel? model = null;
        try
        {
            var weights = DecoderWeights.Load(checkpoint, config, directory);
            model = new DecoderModel(directory, config, weights, backend ?? CpuBackend.CreateDefault(), quantization);
            foreach (string adapter in adapterDirectories ?? []) model.LoadAdapter(adapter);
            return model;
        }
        catch
        {
            if (model is null) checkpoint.Dispose();
            else model.Dispose();
            throw;
        }
    }

    /// <summary>Reads a PEFT adapter folder and applies it unmerged (see <see cref="ApplyAdapter"/>).</summary>
    public void LoadAdapter(string adapterDirectory) => ApplyAdapter(AdapterFolders.Read(adapterDirectory));

    /// <summary>
    /// Applies an adapter on top of the base and any adapters applied before: its modules_to_save tensors replace
    /// the current ones, and each tuner layer (LoRA: scaling·(x·Aᵀ)·Bᵀ added) follows its projection's product. The
    /// adapter is validated against this model first, so a mismatch changes nothing.
    /// </summary>
    /// <exception cref="InvalidDataException">A module the model does not have, or shapes that do not match.</exception>
    public void ApplyAdapter(IModelAdapter adapter)
    {
        var projections = ProjectionsByModule();
        var tensors = ReplaceableTensors(projections);
        adapter.ValidateAgainst(
            module => projections.TryGetValue(module, out var p) ? [p.Weight.Rows, p.Weight.Cols] : null,
            name => tensors.TryGetValue(name, out var t) ? t.Shape : null,
            Directory);
        foreach (var (name, (_, data)) in adapter.ReplacedTensors) tensors[name].Replace(data);
        foreach (var tuner in adapter.CreateTuners(Backend)) projections[tuner.ModulePath].Tuners.Add(tuner);
        _adapters.Add(adapter);
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
        be.Embedding(_embedding, ids, w.Residual);
        for (int l = 0; l < c.NumLayers; l++)
        {
            var L = _layers[l];
            be.RmsNorm(w.Residual.Data, rows, L.InputNorm, c.RmsNormEps, w.Normed.Data);
            Linear(w.Normed, rows, L.Q, w.Query);
            Linear(w.Normed, rows, L.K, w.Key);
            Linear(w.Normed, rows, L.V, w.Value);
            if (L.QNorm is not null && L.KNorm is not null)
            {
                be.RmsNorm(w.Query.Data, rows * c.NumHeads, L.QNorm, c.RmsNormEps, w.Query.Data);
                be.RmsNorm(w.Key.Data, rows * c.NumKvHeads, L.KNorm, c.RmsNormEps, w.Key.Data);
            }
            be.Rope(w.Query.Data, rows, c.NumHeads, _rope, positions);
            be.Rope(w.Key.Data, rows, c.NumKvHeads, _rope, positions);
            cache.Layers[l].Append(w.Key, w.Value, newTokens);
            be.Attention(w.Query, cache.Layers[l], batch, newTokens, cache.KeyMask, cache.Capacity, w.Attention);
            Linear(w.Attention, rows, L.O, w.Projected);
            be.Add(w.Residual.Data, w.Projected.Data, rows * c.HiddenSize);

            be.RmsNorm(w.Residual.Data, rows, L.PostAttentionNorm, c.RmsNormEps, w.Normed.Data);
            Linear(w.Normed, rows, L.Gate, w.Gate);
            Linear(w.Normed, rows, L.Up, w.Up);
            be.SiluMul(w.Gate.Data, w.Up.Data, rows * c.IntermediateSize, w.Gate.Data);
            Linear(w.Gate, rows, L.Down, w.Projected);
            be.Add(w.Residual.Data, w.Projected.Data, rows * c.HiddenSize);
        }
        be.RmsNorm(w.Residual.Data, rows, _finalNorm, c.RmsNormEps, hidden.Data);
    }

    /// <summary>logits[rows × vocab] = hidden · lm_headᵀ for the first rows rows.</summary>
    public void Logits(Tensor hidden, int rows, Tensor logits) => Linear(hidden, rows, _lmHead, logits);

    /// <summary>
    /// The input through the input-side hooks of the tuners that have one, the base product (with bias), then each
    /// tuner layer on that input, in the order applied.
    /// </summary>
    private void Linear(Tensor x, int rows, Projection p, Tensor y)
    {
        foreach (var tuner in p.Tuners)
            if (tuner.TransformsInput)
            {
                var tuned = tuner.TransformInput(x.Data, rows, TunerPass.Evaluate);
                x = new Tensor(tuned, tuned.Length / x.RowWidth, x.RowWidth);
            }
        if (p.Quantized is not null) Backend.Linear(x, rows, p.Quantized, p.Bias, y);
        else Backend.Linear(x, rows, p.Weight, p.Bias, y);
        foreach (var tuner in p.Tuners) tuner.Forward(x.Data, rows, y.Data, TunerPass.Evaluate, null);
    }

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

    public void Dispose()
    {
        Weights.Dispose();
        _hugePages?.Dispose();
    }

    /// <summary>The Linear layers an adapter may wrap, by their module path in the Hugging Face model.</summary>
    private Dictionary<string, Projection> ProjectionsByModule()
    {
        var arch = Config.Description;
        var map = new Dictionary<string, Projection>(StringComparer.Ordinal);
        for (int l = 0; l < _layers.Length; l++)
            foreach (var linear in arch.Linears)
                map[arch.LayerTensor(l, linear.Module)] = _layers[l].Projection(linear.Parts.Single());
        // A tied lm_head is the embedding matrix: transformers has no lm_head.weight of its own to wrap or replace.
        if (!Config.TieWordEmbeddings) map[ModulePath(arch.LmHeadTensor)] = _lmHead;
        return map;
    }

    private static string ModulePath(string weightName) => weightName[..weightName.LastIndexOf('.')];

    /// <summary>Every tensor a modules_to_save entry may replace, by its Hugging Face name, with how to replace it.</summary>
    private Dictionary<string, (long[] Shape, Action<float[]> Replace)> ReplaceableTensors(Dictionary<string, Projection> projections)
    {
        var arch = Config.Description;
        var map = new Dictionary<string, (long[], Action<float[]>)>(StringComparer.Ordinal);
        foreach (var (module, p) in projections)
        {
            map[module + ".weight"] = ([p.Weight.Rows, p.Weight.Cols], data =>
            {
                p.Weight = Pinned(data, p.Weight.Rows, p.Weight.Cols);
                p.Quantized = null;
            });
            if (p.Bias is not null) map[module + ".bias"] = ([p.Bias.Length], data => p.Bias = data);
        }
        // With tied embeddings, PEFT's modules_to_save replaces embed_tokens or lm_head alone (the wrapped module's
        // copy); the other keeps the shared original, so replacing one unties the pair.
        map[arch.EmbeddingTensor] = ([_embedding.Rows, _embedding.Cols], data => _embedding = Pinned(data, _embedding.Rows, _embedding.Cols));
        if (Config.TieWordEmbeddings)
            map[arch.LmHeadTensor] = ([_lmHead.Weight.Rows, _lmHead.Weight.Cols], data =>
            {
                _lmHead.Weight = Pinned(data, _lmHead.Weight.Rows, _lmHead.Weight.Cols);
                _lmHead.Quantized = null;
            });
        map[arch.FinalNormTensor] = ([_finalNorm.Length], data => _finalNorm = data);
        for (int l = 0; l < _layers.Length; l++)
        {
            var L = _layers[l];
            foreach (var norm in arch.Norms)
                map[arch.LayerTensor(l, norm.WeightName)] = ([L.Norm(norm.Slot).Length], data => L.SetNorm(norm.Slot, data));
        }
        return map;
    }

    private unsafe WeightMatrix Pinned(float[] values, int rows, int cols)
    {
        var pinned = GC.AllocateUninitializedArray<float>(values.Length, pinned: true);
        values.CopyTo(pinned, 0);
        _pinnedReplacements.Add(pinned);
        return new WeightMatrix((void*)Marshal.UnsafeAddrOfPinnedArrayElement(pinned, 0), DType.F32, rows, cols);
    }

    /// <summary>
    /// A Linear as the forward pass applies it: the base weight (or its replacement), bias, and tuner layers. A quantised
    /// projection multiplies through <see cref="Quantized"/>; <see cref="Weight"/> then only gives the shape.
    /// </summary>
    private sealed class Projection(WeightMatrix weight, float[]? bias, QuantizationOptions? quantization = null)
    {
        public WeightMatrix Weight { get; set; } = weight;
        public IFrozenMatrix? Quantized { get; set; } = quantization is null ? null : MappedQuantization.Quantize(weight, quantization);
        public float[]? Bias { get; set; } = bias;
        public List<ILinearTuner> Tuners { get; } = [];
    }

    /// <summary>The tensors of one decoder layer that the forward pass reads.</summary>
    private sealed class LayerTensors(DecoderLayerWeights w, QuantizationOptions? q)
    {
        public float[] InputNorm { get; set; } = w.InputNorm;
        public Projection Q { get; } = new(w.QProj, w.QBias, q);
        public Projection K { get; } = new(w.KProj, w.KBias, q);
        public Projection V { get; } = new(w.VProj, w.VBias, q);
        public Projection O { get; } = new(w.OProj, w.OBias, q);
        public float[]? QNorm { get; set; } = w.QNorm;
        public float[]? KNorm { get; set; } = w.KNorm;
        public float[] PostAttentionNorm { get; set; } = w.PostAttentionNorm;
        public Projection Gate { get; } = new(w.GateProj, w.GateBias, q);
        public Projection Up { get; } = new(w.UpProj, w.UpBias, q);
        public Projection Down { get; } = new(w.DownProj, w.DownBias, q);

        public Projection Projection(ProjectionSlot slot) => slot switch
        {
            ProjectionSlot.Query => Q,
            ProjectionSlot.Key => K,
            ProjectionSlot.Value => V,
            ProjectionSlot.Output => O,
            ProjectionSlot.Gate => Gate,
            ProjectionSlot.Up => Up,
            ProjectionSlot.Down => Down,
            _ => throw new ArgumentOutOfRangeException(nameof(slot)),
        };

        public float[] Norm(NormSlot slot) => slot switch
        {
            NormSlot.Input => InputNorm,
            NormSlot.PostAttention => PostAttentionNorm,
            NormSlot.QueryNorm => QNorm!,
            NormSlot.KeyNorm => KNorm!,
            _ => throw new ArgumentOutOfRangeException(nameof(slot)),
        };

        public void SetNorm(NormSlot slot, float[] values)
        {
            switch (slot)
            {
                case NormSlot.Input: InputNorm = values; break;
                case NormSlot.PostAttention: PostAttentionNorm = values; break;
                case NormSlot.QueryNorm: QNorm = values; break;
                case NormSlot.KeyNorm: KNorm = values; break;
                default: throw new ArgumentOutOfRangeException(nameof(slot));
            }
        }
    }

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
