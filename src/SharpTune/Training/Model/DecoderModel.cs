using System.Runtime.InteropServices;
using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Quantization;
using SharpTune.Training.Objectives;

namespace SharpTune.Training.Model;

/// <summary>
/// The decoder (Qwen2, Llama, Qwen3, ChatGLM), one implementation for training and generation: every weight is a
/// <see cref="ModelTensor"/> under its Hugging Face name and each layer runs the same list of backend calls either
/// way. The checkpoint stays memory-mapped for the model's lifetime: frozen matrices are multiplied straight from
/// it (bf16/fp16 as stored, or quantised projections for QLoRA) and frozen embedding rows are read from it, so only
/// what is trained, the norms and the biases are fp32 arrays. Training (<see cref="Load"/>) keeps each layer's
/// activations for the backward, which produces gradients only where something is trainable; it computes only the
/// rows a loss can read, padding-free (<see cref="RowLayout"/>), at the batch's position_ids or 0..T-1 in every row, as
/// transformers uses without position_ids. Generation (<see cref="LoadForGeneration"/>) runs the
/// same layers over a KV cache at the positions it is given, on buffers of its own that keep nothing for a
/// backward, with adapters applied unmerged (<see cref="ApplyAdapter"/>).
/// </summary>
public sealed class DecoderModel : IDisposable
{
    /// <summary>Logits kept at once by the loss: rows × vocab stays under this many floats...</summary>
    private const int LossChunkFloats = 16 << 20;
    /// <summary>
    /// ...unless that leaves fewer rows than this: the lm_head product re-reads the whole vocabulary matrix for every
    /// chunk, and below ~256 rows it runs well under full GEMM speed (110-row chunks of a 151936 vocabulary ran at
    /// half the speed of one 255-row chunk, for 155 MB more).
    /// </summary>
    private const int MinLossChunkRows = 256;

    public ModelConfig Config { get; }
    public string Directory { get; }

    /// <summary>
    /// What adapters trained on this model record as base_model_name_or_path: the Hub id when the folder is a cached
    /// snapshot of one (so Python loads the adapter onto the same base from anywhere), else the folder.
    /// </summary>
    public string BaseModelName { get; set; }
    /// <summary>The dtype of the base checkpoint's matrices, which full/freeze saving writes back.</summary>
    public DType StoredDType { get; }
    /// <summary>How the layers' projections are quantised (QLoRA), or null when they are kept as stored.</summary>
    public QuantizationOptions? Quantization { get; }
    public ModelTensor Embedding { get; }
    /// <summary>
    /// The output projection; the same tensor as <see cref="Embedding"/> with tied embeddings, until
    /// <see cref="UntieLmHead"/>.
    /// </summary>
    public ModelTensor LmHead { get; private set; }
    public ModelTensor FinalNorm { get; }
    public TrainableLayer[] Layers { get; }

    /// <summary>Where every operation of the forward and backward runs.</summary>
    public IComputeBackend Backend { get; }

    /// <summary>Keep only each layer's input in the forward and recompute the layer during the backward.</summary>
    public bool GradientCheckpointing { get; }

    /// <summary>
    /// Training and objective forwards compute only the rows a loss reads, each row's right padding left out
    /// (<see cref="RowLayout"/>); false computes every row of the padded batch, the same losses and gradients for more
    /// work (what the bench's <c>--padding-free false</c> measures against).
    /// </summary>
    public bool PaddingFree { get; set; } = true;

    /// <summary>
    /// The Linears of a layer that read one input and are stored apart (q/k/v, gate/up: <see cref="SharedInputLinears"/>)
    /// multiply it as one stacked matrix while their weights are frozen; false multiplies each on its own, the same
    /// losses and gradients up to the order of fp32 sums (what the tests compare against).
    /// </summary>
    public bool FuseSharedInputs { get; set; } = true;

    /// <summary>
    /// Called after each layer's backward, last layer first: that layer's gradients are complete for this backward
    /// (data-parallel training sends them to the other ranks while the layers below are still being computed).
    /// </summary>
    public Action<TrainableLayer>? LayerBackwardDone { get; set; }

    /// <summary>The adapters applied unmerged so far, in the order they were applied.</summary>
    public IReadOnlyList<IModelAdapter> Adapters => _adapters;

    /// <summary>
    /// The model-level tuner (prompt tuning, P-tuning, prefix tuning: <see cref="IModelTuner"/>) attached for training
    /// or by an applied adapter, or null. Training puts its positions before every sequence of a batch (ids and
    /// labels −100 there, attention mask 1, real tokens from position n on, as PEFT's forward does); generation
    /// fills the first entries of every KV cache with them (<see cref="CreateCache"/>).
    /// </summary>
    public IModelTuner? ModelTuner { get; private set; }

    /// <summary>The model tuner the forwards use: none while the tuners are disabled.</summary>
    private IModelTuner? ActiveModelTuner => _tunersDisabled ? null : ModelTuner;

    private readonly DecoderWeights _stored;
    private readonly RopeTable _rope;
    private Buffers? _buffers;
    private GenerationBuffers? _generation;
    private readonly List<IModelAdapter> _adapters = [];
    /// <summary>Tuner layers an adapter put on an untied lm_head, which has no <see cref="TrainableLinear"/> of its own.</summary>
    private readonly List<ILinearTuner> _lmHeadTuners = [];
    // Replacement matrices live on the pinned heap so their WeightMatrix views stay valid; held here to keep them alive.
    private readonly List<float[]> _pinnedReplacements = [];
    // Copies of the streamed matrices in huge pages, where the kernel offers them (generation only); null otherwise.
    private HugePageArena? _hugePages;

    private DecoderModel(string directory, ModelConfig config, DecoderWeights stored, QuantizationOptions? quantization,
        ModelTensor embedding, ModelTensor lmHead, ModelTensor finalNorm, TrainableLayer[] layers, bool gradientCheckpointing, IComputeBackend backend)
    {
        Directory = directory;
        BaseModelName = directory;
        Config = config;
        _stored = stored;
        StoredDType = stored.Embedding.DType;
        Quantization = quantization;
        Embedding = embedding;
        LmHead = lmHead;
        FinalNorm = finalNorm;
        Layers = layers;
        GradientCheckpointing = gradientCheckpointing;
        Backend = backend;
        _rope = RopeScaling.BuildTable(config);
    }

    /// <summary>
    /// Opens the model folder; with quantization the seven projections of every layer are quantised on load
    /// (embedding, lm_head, norms and biases never are).
    /// </summary>
    /// <param name="bf16Compute">
    /// bf16: true. Frozen bf16 weights are multiplied in bf16 (<see cref="Bf16ComputeMatrix"/>), and quantised
    /// projections dequantise into bf16 for that GEMM (<see cref="TiledFrozenMatrix.Bf16Kernel"/>), when this machine has
    /// a bf16 GEMM (<see cref="Bf16ComputeMatrix.AvailableKernel"/>); otherwise, and for other unquantised dtypes, in fp32.
    /// </param>
    /// <param name="backend">Where the model computes; the default CPU backend when null.</param>
    public static DecoderModel Load(string directory, bool gradientCheckpointing, QuantizationOptions? quantization = null,
        bool bf16Compute = false, IComputeBackend? backend = null)
    {
        ModelFolder.Validate(directory);
        var c = ModelConfig.Load(ModelFolder.ConfigPath(directory));
        var checkpoint = SafetensorsCheckpoint.OpenDirectory(directory);
        DecoderWeights weights;
        try
        {
            // DecoderWeights checks every name and shape against config.json and owns the mapped checkpoint from here.
            weights = DecoderWeights.Load(checkpoint, c, directory);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
        try
        {
            return Bind(directory, c, weights, gradientCheckpointing, quantization, bf16Compute ? Bf16ComputeMatrix.AvailableKernel : null,
                backend ?? CpuBackend.CreateDefault());
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    private static DecoderModel Bind(string directory, ModelConfig c, DecoderWeights weights, bool gradientCheckpointing,
        QuantizationOptions? quantization, OneDnnGemmKernel? bf16Kernel, IComputeBackend backend)
    {
        IFrozenMatrix Frozen(WeightMatrix matrix) =>
            bf16Kernel is not null && matrix.DType == DType.BF16 ? new Bf16ComputeMatrix(matrix, bf16Kernel) : new StoredMatrix(matrix);
        ModelTensor Vector(string name, float[] values) => new(name, [values.Length], values);
        TrainableLinear Linear(string path, WeightMatrix matrix, float[]? bias, IFrozenMatrix? frozen) =>
            new(path, matrix.Cols, matrix.Rows, backend, new ModelTensor(path + ".weight", frozen ?? Projection(matrix), quantization is not null),
                bias is null ? null : Vector(path + ".bias", bias));
        // A layer projection: the stored matrix, or its quantised form.
        IFrozenMatrix Projection(WeightMatrix matrix) => quantization is null ? Frozen(matrix) : MappedQuantization.Quantize(matrix, quantization, bf16Kernel);
        // Linears reading one input: their matrices stacked, each part a row view of the stack (quantised parts are
        // quantised one by one, as bitsandbytes quantises each module; int8's rows are then stacked, 4-bit's stay
        // the parts' and the stack reads their tiles, since double quantisation's absmax statistics are per module).
        (IFrozenMatrix? Stacked, IFrozenMatrix[] Views, object? Storage) Stack(WeightMatrix[] parts)
        {
            if (quantization is not null)
            {
                var quantized = parts.Select(Projection).ToArray();
                if (quantized.All(q => q is Int8Matrix))
                {
                    var (stack, rowViews) = Int8Matrix.Stack(quantized.Cast<Int8Matrix>().ToArray());
                    return (stack, rowViews, null);
                }
                return (TiledFrozenMatrix.Stack(quantized.Cast<TiledFrozenMatrix>().ToArray()), quantized, null);
            }
            if (SharedInputLinears.StackStored(parts) is not var (whole, views, storage)) return (null, parts.Select(Frozen).ToArray(), null);
            return (Frozen(whole), views.Select(Frozen).ToArray(), storage);
        }

        var arch = c.Description;
        var embedding = new ModelTensor(arch.EmbeddingTensor, Frozen(weights.Embedding), quantized: false);
        var lmHead = c.TieWordEmbeddings ? embedding : new ModelTensor(arch.LmHeadTensor, Frozen(weights.LmHead), quantized: false);
        var layers = new TrainableLayer[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
        {
            int layer = i;
            var w = weights.Layers[i];
            ModelTensor Norm(NormSlot slot, float[] values) => Vector(arch.LayerTensor(layer, arch.Norm(slot).WeightName), values);
            var frozenParts = new IFrozenMatrix?[w.Linears.Length];
            var stacks = new List<(int Index, ProjectionSlot[] Slots, int[] Members, IFrozenMatrix Stacked, IFrozenMatrix[] Views, object? Storage)>();
            foreach (var (index, slots, declarations) in SharedInputLinears.Declared(arch))
            {
                int[] members = declarations.Select(d => Array.FindIndex(w.Linears, l => l.Declaration == d)).ToArray();
                var (stacked, views, storage) = Stack(members.Select(k => w.Linears[k].Weight).ToArray());
                for (int m = 0; m < members.Length; m++) frozenParts[members[m]] = views[m];
                if (stacked is not null) stacks.Add((index, slots, members, stacked, views, storage));
            }
            var linears = w.Linears.Select((l, k) => Linear(arch.LayerTensor(layer, l.Declaration.Module), l.Weight, l.Bias, frozenParts[k])).ToArray();
            var projections = new Dictionary<ProjectionSlot, LayerProjection>();
            for (int k = 0; k < linears.Length; k++)
                foreach (var slot in w.Linears[k].Declaration.Parts)
                    projections[slot] = new LayerProjection(linears[k], k, DecoderArchitecture.PartOffset(c, w.Linears[k].Declaration, slot),
                        DecoderArchitecture.Shape(c, slot).Out);
            var norms = arch.Norms.ToDictionary(n => n.Slot, n => Norm(n.Slot, n.Slot switch
            {
                NormSlot.Input => w.InputNorm,
                NormSlot.PostAttention => w.PostAttentionNorm,
                NormSlot.QueryNorm => w.QNorm!,
                _ => w.KNorm!,
            }));
            var tensors = new List<ModelTensor>();
            foreach (var declaration in arch.Layer)
            {
                if (declaration is NormDeclaration norm)
                {
                    tensors.Add(norms[norm.Slot]);
                    continue;
                }
                var linear = linears[Array.FindIndex(w.Linears, l => l.Declaration == declaration)];
                tensors.Add(linear.Weight);
                if (linear.Bias is not null) tensors.Add(linear.Bias);
            }
            layers[i] = new TrainableLayer
            {
                Index = i,
                InputNorm = norms[NormSlot.Input],
                QNorm = norms.GetValueOrDefault(NormSlot.QueryNorm),
                KNorm = norms.GetValueOrDefault(NormSlot.KeyNorm),
                PostAttentionNorm = norms[NormSlot.PostAttention],
                Linears = linears,
                Projections = projections,
                SharedInputs = stacks.Select(g => new SharedInputLinears(g.Index, g.Slots, g.Members.Select(k => linears[k]).ToArray(), g.Stacked, g.Views, g.Storage)).ToArray(),
                Tensors = tensors,
            };
        }
        var finalNorm = Vector(arch.FinalNormTensor, weights.FinalNorm);
        return new DecoderModel(directory, c, weights, quantization, embedding, lmHead, finalNorm, layers, gradientCheckpointing, backend);
    }

    /// <summary>
    /// Loads a model folder for generation and applies the adapters (PEFT folders) in
    /// <paramref name="adapterDirectories"/> in order, unmerged. With quantization the layers' projections are
    /// quantised on load (embedding, lm_head and norms never are); without it the matrices every token streams are
    /// moved into huge pages (<see cref="MoveIntoHugePages"/>).
    /// </summary>
    public static DecoderModel LoadForGeneration(string directory, IComputeBackend? backend = null,
        IReadOnlyList<string>? adapterDirectories = null, QuantizationOptions? quantization = null)
    {
        var model = Load(directory, gradientCheckpointing: false, quantization, backend: backend);
        try
        {
            if (quantization is null && HugePageArena.IsSupported) model._hugePages = model.MoveIntoHugePages();
            foreach (string adapter in adapterDirectories ?? []) model.LoadAdapter(adapter);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies the matrices every token streams (the layers' projections and lm_head, with the embedding when it is
    /// tied) into huge pages: decoding is bound by reading them, and reads through the mapped file's 4 KiB pages
    /// were ~15–30% slower (see <see cref="HugePageArena"/>). The values are the checkpoint's, bit for bit. A model that
    /// would take more than half the available memory stays on its mapping (null).
    /// </summary>
    private HugePageArena? MoveIntoHugePages()
    {
        // Right after loading every matrix is a view into the mapped checkpoint, so its pages can be released, but for
        // the stacked matrices of Linears reading one input, which move whole from their own memory.
        var groups = Layers.SelectMany(l => l.SharedInputs).ToList();
        var stacked = groups.SelectMany(g => g.Parts).Select(p => p.Weight).ToHashSet();
        var matrices = Linears.Select(l => l.Weight).Where(t => !stacked.Contains(t)).Append(LmHead).ToList();
        static WeightMatrix Stored(ModelTensor t) => ((StoredMatrix)t.Frozen!).Matrix;
        long bytes = matrices.Sum(t => HugePageArena.SizeOf(Stored(t))) + groups.Sum(g => HugePageArena.SizeOf(((StoredMatrix)g.Stacked).Matrix));
        if (!HugePageArena.Affords(bytes)) return null;
        var arena = new HugePageArena(bytes);
        foreach (var t in matrices) t.Replace(new StoredMatrix(arena.CopyIn(Stored(t), releaseMappedSource: true)));
        foreach (var g in groups) g.MoveStorage(m => arena.CopyIn(m, releaseMappedSource: false));
        return arena;
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
        var (projections, tensors) = ValidateAdapter(adapter);
        // Every tuner may refuse the tuners already on its Linear, so all are attached before anything changes.
        var tuners = adapter.CreateTuners(Backend);
        foreach (var tuner in tuners)
        {
            var target = projections[tuner.ModulePath];
            tuner.AttachTo(new BaseLinear(target.Weight, target.Bias, Backend), target.Tuners);
        }
        if (adapter.CreateModelTuner() is { } modelTuner) AttachModelTuner(modelTuner, adapter.Directory);
        foreach (var (name, (_, data)) in adapter.ReplacedTensors) tensors[name].Replace(data);
        foreach (var tuner in tuners) projections[tuner.ModulePath].Tuners.Add(tuner);
        _adapters.Add(adapter);
    }

    /// <summary>The model's Linears and replaceable tensors by name, once <paramref name="adapter"/> is checked against them.</summary>
    private (Dictionary<string, AdapterTarget> Projections, Dictionary<string, (long[] Shape, Action<float[]> Replace)> Tensors) ValidateAdapter(IModelAdapter adapter)
    {
        var projections = ProjectionsByModule();
        var tensors = ReplaceableTensors(projections);
        adapter.ValidateAgainst(
            module => projections.TryGetValue(module, out var p) ? [p.Weight.Shape[0], p.Weight.Shape[1]] : null,
            name => tensors.TryGetValue(name, out var t) ? t.Shape : null,
            Directory);
        return (projections, tensors);
    }

    /// <summary>
    /// Runs <paramref name="adapter"/>'s tuner layers in place of the model's own until the returned scope is disposed,
    /// as LLaMA-Factory's replace_model sets PPO's LoRA reward adapter active and then the policy's again: the model's
    /// tuners (trained or not) are set aside untouched and come back as they were. Only tuners of Linears swap; an
    /// adapter that replaces tensors (modules_to_save) or brings a prompt-learning tuner is refused, since either would
    /// change the model's own weights or inputs.
    /// </summary>
    /// <exception cref="InvalidDataException">The adapter does not fit this model, or replaces tensors or adds a model tuner.</exception>
    public IDisposable UseAdapterInstead(IModelAdapter adapter)
    {
        if (_tunersDisabled) throw new InvalidOperationException("the tuners are disabled (a reference forward); enable them before swapping an adapter in");
        if (adapter.ReplacedTensors.Count > 0 || adapter.CreateModelTuner() is not null)
            throw new InvalidDataException($"{adapter.Directory}: only an adapter of tuner layers (such as LoRA) can be swapped in for a forward; this one replaces tensors (modules_to_save) or adds virtual tokens");
        var (projections, _) = ValidateAdapter(adapter);
        var own = projections.Values.ToDictionary(p => p.Tuners, p => p.Tuners.ToList());
        foreach (var p in projections.Values) p.Tuners.Clear();
        foreach (var tuner in adapter.CreateTuners(Backend))
        {
            var target = projections[tuner.ModulePath];
            tuner.AttachTo(new BaseLinear(target.Weight, target.Bias, Backend), target.Tuners);
            target.Tuners.Add(tuner);
        }
        return new AdapterSwap(own);
    }

    private sealed class AdapterSwap(Dictionary<List<ILinearTuner>, List<ILinearTuner>> own) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var (list, tuners) in own)
            {
                list.Clear();
                list.AddRange(tuners);
            }
        }
    }

    /// <summary>A Linear an adapter may wrap: its weight, bias and tuner layers.</summary>
    private sealed record AdapterTarget(ModelTensor Weight, ModelTensor? Bias, List<ILinearTuner> Tuners);

    /// <summary>The Linear layers an adapter may wrap, by their module path in the Hugging Face model.</summary>
    private Dictionary<string, AdapterTarget> ProjectionsByModule()
    {
        var arch = Config.Description;
        var map = new Dictionary<string, AdapterTarget>(StringComparer.Ordinal);
        foreach (var linear in Layers.SelectMany(l => l.Linears))
            map[linear.ModulePath] = new AdapterTarget(linear.Weight, linear.Bias, linear.Tuners);
        // A tied lm_head is the embedding matrix: transformers has no lm_head.weight of its own to wrap or replace.
        if (!Config.TieWordEmbeddings) map[ModulePath(arch.LmHeadTensor)] = new AdapterTarget(LmHead, null, _lmHeadTuners);
        return map;
    }

    private static string ModulePath(string weightName) => weightName[..weightName.LastIndexOf('.')];

    /// <summary>
    /// Attaches a model-level tuner (for training, or from an adapter applied for generation) after checking its
    /// shapes against this model: virtual tokens [n × hidden], or key and value prefixes [n × kv heads · head dim] on
    /// every layer, not both.
    /// </summary>
    /// <param name="source">What the tuner comes from (an adapter folder), named in errors.</param>
    /// <exception cref="InvalidDataException">A second model tuner, or shapes that do not fit this model.</exception>
    public void AttachModelTuner(IModelTuner tuner, string source)
    {
        if (ModelTuner is not null)
            throw new InvalidDataException(
                $"{source}: the model already has a prompt-learning adapter; two cannot be applied together, since each was trained with its own " +
                "virtual tokens or prefix at positions 0..n-1 before the input (PEFT applies one prompt-learning adapter at a time)");
        int n = tuner.Tokens;
        if (n <= 0) throw new InvalidDataException($"{source}: num_virtual_tokens must be positive, got {n}");
        var prefixes = Enumerable.Range(0, Layers.Length).Select(tuner.KeyValuePrefix).ToArray();
        void Check(Parameter p, int width, string what)
        {
            if (p.Shape.Length != 2 || p.Shape[0] != n || p.Shape[1] != width)
                throw new InvalidDataException(
                    $"{source}: {what} is [{string.Join(", ", p.Shape)}], but the base model {Directory} needs [{n}, {width}]; was the adapter trained on another model?");
        }
        if (tuner.VirtualTokens is { } virtualTokens)
        {
            if (prefixes.Any(p => p is not null)) throw new InvalidDataException($"{source}: a tuner adds virtual tokens or key/value prefixes, not both");
            Check(virtualTokens, Config.HiddenSize, "the virtual tokens");
        }
        else if (prefixes.Any(p => p is null))
            throw new InvalidDataException($"{source}: the key/value prefix must cover all {Layers.Length} layers of {Directory}");
        for (int l = 0; l < prefixes.Length; l++)
            if (prefixes[l] is var (keys, values))
            {
                Check(keys, Config.KvWidth, $"layer {l}'s key prefix");
                Check(values, Config.KvWidth, $"layer {l}'s value prefix");
            }
        ModelTuner = tuner;
    }

    /// <summary>Every tensor a modules_to_save entry may replace, by its Hugging Face name, with how to replace it.</summary>
    private Dictionary<string, (long[] Shape, Action<float[]> Replace)> ReplaceableTensors(Dictionary<string, AdapterTarget> projections)
    {
        var arch = Config.Description;
        var map = new Dictionary<string, (long[], Action<float[]>)>(StringComparer.Ordinal);
        // target is asked for at replacement time: replacing one of a tied pair first unties it.
        void Matrix(string name, ModelTensor current, Func<ModelTensor> target)
        {
            int rows = current.Shape[0], cols = current.Shape[1];
            map[name] = ([rows, cols], data => target().Replace(Pinned(data, rows, cols)));
        }
        void Vector(string name, ModelTensor t) => map[name] = ([t.Length], data => t.Replace(data));
        foreach (var (module, p) in projections)
        {
            Matrix(module + ".weight", p.Weight, () => p.Weight);
            if (p.Bias is not null) Vector(module + ".bias", p.Bias);
        }
        // With tied embeddings, PEFT's modules_to_save replaces embed_tokens or lm_head alone (the wrapped module's
        // copy); the other keeps the shared original, so replacing one unties the pair.
        Matrix(arch.EmbeddingTensor, Embedding, () => { UntieLmHead(); return Embedding; });
        if (Config.TieWordEmbeddings) Matrix(arch.LmHeadTensor, LmHead, () => { UntieLmHead(); return LmHead; });
        Vector(arch.FinalNormTensor, FinalNorm);
        for (int l = 0; l < Layers.Length; l++)
            foreach (var norm in arch.Norms)
                Vector(arch.LayerTensor(l, norm.WeightName), Layers[l].Norm(norm.Slot)!);
        return map;
    }

    private unsafe StoredMatrix Pinned(float[] values, int rows, int cols)
    {
        var pinned = GC.AllocateUninitializedArray<float>(values.Length, pinned: true);
        values.CopyTo(pinned, 0);
        _pinnedReplacements.Add(pinned);
        return new StoredMatrix(new WeightMatrix((void*)Marshal.UnsafeAddrOfPinnedArrayElement(pinned, 0), DType.F32, rows, cols));
    }

    /// <summary>
    /// A KV cache for <paramref name="capacity"/> positions of <paramref name="batch"/> sequences. With a model tuner
    /// its positions come first: a key/value prefix is stored as the first entries of every layer, virtual tokens are
    /// run through the layers there (positions 0..n-1), and <see cref="Forward(ReadOnlySpan{int}, ReadOnlySpan{int}, ReadOnlySpan{byte}, int, int, KvCache, Tensor)"/>
    /// then shifts the positions it is given by n.
    /// </summary>
    public KvCache CreateCache(int batch, int capacity)
    {
        if (ActiveModelTuner is not { } tuner) return new(Config, batch, capacity, Backend);
        int n = tuner.Tokens;
        var cache = new KvCache(Config, batch, n + capacity, Backend) { Prefix = n };
        tuner.Forward(TunerPass.Evaluate, null);
        var ones = Enumerable.Repeat((byte)1, batch * n).ToArray();
        var positions = Enumerable.Range(0, batch * n).Select(r => r % n).ToArray();
        if (tuner.VirtualTokens is { } virtualTokens)
        {
            var w = GenerationBuffersFor(batch * n);
            int h = Config.HiddenSize;
            for (int r = 0; r < batch * n; r++) Backend.CopyFromHost(virtualTokens.Data.AsSpan(r % n * h, h), w.Residual, (long)r * h);
            RunLayers(w, positions, ones, batch, n, cache);
            return cache;
        }
        for (int b = 0; b < batch; b++) Array.Fill(cache.KeyMask, (byte)1, b * cache.Capacity, n);
        var keys = Backend.Allocate(batch * n, Config.KvWidth);
        var values = Backend.Allocate(batch * n, Config.KvWidth);
        for (int l = 0; l < Layers.Length; l++)
        {
            var (k, v) = tuner.KeyValuePrefix(l)!.Value;
            for (int b = 0; b < batch; b++)
            {
                Backend.CopyFromHost(k.Data, keys, (long)b * k.Length);
                Backend.CopyFromHost(v.Data, values, (long)b * v.Length);
            }
            Backend.AppendToCache(cache.Layers[l], keys, values, n);
        }
        return cache;
    }

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

        var w = GenerationBuffersFor(rows);
        if (Embedding.Frozen is StoredMatrix stored) Backend.Embedding(stored.Matrix, ids, w.Residual);
        else GatherEmbedding(ids, w.Residual);
        if (cache.Prefix > 0)
        {
            var shifted = new int[rows];
            for (int r = 0; r < rows; r++) shifted[r] = positions[r] + cache.Prefix;
            positions = shifted;
        }
        RunLayers(w, positions, mask, batch, newTokens, cache);
        Backend.RmsNorm(w.Residual, rows, FinalNorm.Data, Config.RmsNormEps, hidden);
    }

    private GenerationBuffers GenerationBuffersFor(int rows)
    {
        if (_generation is null || _generation.Rows < rows) _generation = new GenerationBuffers(Config, rows, Backend);
        return _generation;
    }

    /// <summary>The layers over the residual stream of <paramref name="w"/>, appending to the cache with the key mask given.</summary>
    private void RunLayers(GenerationBuffers w, ReadOnlySpan<int> positions, ReadOnlySpan<byte> mask, int batch, int newTokens, KvCache cache)
    {
        var c = Config;
        int rows = batch * newTokens;
        for (int b = 0; b < batch; b++)
            mask.Slice(b * newTokens, newTokens).CopyTo(cache.KeyMask.AsSpan(b * cache.Capacity + cache.Length, newTokens));
        var shape = new AttentionShape(batch, newTokens, c.NumHeads, c.NumKvHeads, c.HeadDim);
        for (int l = 0; l < Layers.Length; l++)
            LayerForward(Layers[l], l, w.Activations, w.Residual, w.Residual, w.Projected, w.Fused, w.SharedInput, rows, positions, shape,
                layout: null, cache, TunerPass.Evaluate, null);
    }

    /// <summary>logits[rows × vocab] = hidden · lm_headᵀ for the first rows rows, then lm_head's tuner layers.</summary>
    public void Logits(Tensor hidden, int rows, Tensor logits)
    {
        TrainableLinear.Generate(Backend, LmHead, null, _tunersDisabled ? [] : _lmHeadTuners, hidden, rows, logits);
    }

    /// <summary>
    /// A full forward pass over a padded batch ([B][T] ids and attention mask), positions 0..T-1 in every row as
    /// transformers uses when no position_ids are given. Returns last hidden states [B·T × H] and logits [B·T × V],
    /// copied back to the host.
    /// </summary>
    public (float[] Hidden, float[] Logits) Evaluate(int[][] inputIds, int[][] attentionMask)
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
        var hidden = Backend.Allocate(batch * t, Config.HiddenSize);
        Forward(ids, positions, mask, batch, t, cache, hidden);
        var logits = Backend.Allocate(batch * t, Config.VocabSize);
        Logits(hidden, batch * t, logits);
        return (ToHost(hidden, hidden.Length), ToHost(logits, logits.Length));
    }

    /// <summary>The first count values of a backend tensor, read back to the host.</summary>
    private float[] ToHost(Tensor tensor, int count)
    {
        var values = new float[count];
        Backend.CopyToHost(tensor, 0, values);
        return values;
    }

    /// <summary>
    /// Gives a tied lm_head a tensor of its own, "lm_head.weight", holding the embedding's current values (sharing its
    /// compact storage while both are frozen), so that training or replacing one of the two leaves the other as it
    /// is: what PEFT's modules_to_save does to a tied model, whose wrapped module trains a copy while the other keeps
    /// the original weight. Does nothing when lm_head is already separate.
    /// </summary>
    public void UntieLmHead()
    {
        if (!ReferenceEquals(LmHead, Embedding)) return;
        LmHead = Embedding.Frozen is { } frozen
            ? new ModelTensor(Config.Description.LmHeadTensor, frozen, Embedding.IsQuantized)
            : new ModelTensor(Config.Description.LmHeadTensor, Embedding.Shape, (float[])Embedding.Data.Clone());
    }

    /// <summary>
    /// Bytes of the step buffers (layer inputs, per-layer activations or one shared set under gradient checkpointing,
    /// gradient buffers) for <paramref name="rows"/> rows (batch × length). Every buffer is rows × a width, so this
    /// builds the buffers of one row, with the constructor a step uses, and scales the floats it allocated.
    /// </summary>
    public static long ActivationBytes(ModelConfig config, int rows, bool gradientCheckpointing) =>
        sizeof(float) * rows * new Buffers(config, 1, gradientCheckpointing, CpuBackend.CreateDefault()).AllocatedValues;

    /// <summary>Label rows per loss chunk, for a batch whose labels sit on <paramref name="labelRows"/> rows.</summary>
    public static int LossChunkRows(int labelRows, int vocab) => Math.Clamp(Math.Max(MinLossChunkRows, LossChunkFloats / vocab), 1, labelRows);

    /// <summary>Bytes of the loss chunk buffers (hidden rows, their logits, their gradient) for a chunk of <paramref name="chunkRows"/>.</summary>
    public static long LossChunkBytes(ModelConfig config, int chunkRows) => sizeof(float) * Buffers.LossChunkValues(chunkRows, config.HiddenSize, config.VocabSize);

    /// <summary>Bytes the weights occupy (compact storage plus fp32 tensors), each tensor once.</summary>
    public long StorageBytes => Tensors.Sum(t => t.StorageBytes);

    /// <summary>Closes the memory-mapped checkpoint; the model cannot be used afterwards.</summary>
    public void Dispose()
    {
        _stored.Dispose();
        _hugePages?.Dispose();
    }

    /// <summary>Every tensor once, in transformers' named_parameters() order (a tied lm_head is the embedding).</summary>
    public IEnumerable<ModelTensor> Tensors
    {
        get
        {
            yield return Embedding;
            foreach (var layer in Layers)
                foreach (var t in layer.Tensors) yield return t;
            yield return FinalNorm;
            if (!ReferenceEquals(LmHead, Embedding)) yield return LmHead;
        }
    }

    public IEnumerable<TrainableLinear> Linears => Layers.SelectMany(l => l.Linears);

    /// <summary>Forward, SFT's loss and backward; gradScale·d(mean loss)/dθ is added to every trainable gradient.</summary>
    public LossResult ForwardBackward(TrainingBatch batch, float gradScale, SeededRandom random) =>
        ForwardBackward(batch, new SupervisedCrossEntropy(), gradScale, random);

    /// <summary>Forward, the objective's loss and backward; gradScale·dLoss/dθ is added to every trainable gradient.</summary>
    public LossResult ForwardBackward(TrainingBatch batch, ITrainingObjective objective, float gradScale, SeededRandom random)
    {
        if (_tunersDisabled)
            throw new InvalidOperationException("the tuners are disabled (a reference forward); enable them before training");
        batch = WithModelTunerPositions(batch);
        var b = Prepare(batch, PaddingFree);
        Forward(b, TunerPass.Train, random);
        return LabelLogProbsAndBackward(batch, b, objective, gradScale, backward: true).Loss;
    }

    /// <summary>
    /// Forward and backward of a loss read from the final normed hidden states (a value head: the reward model's
    /// pairwise loss, PPO's value loss), beside an optional token objective over the label tokens (PPO's policy loss):
    /// both gradients flow into the final hidden states and down through one backward. gradScale·dLoss/dθ is added to
    /// every trainable gradient; the hidden objective keeps its own loss and outputs. Returns the token objective's
    /// loss (no tokens without one).
    /// </summary>
    public LossResult ForwardBackward(TrainingBatch batch, IHiddenStateObjective hiddenObjective, ITrainingObjective? objective,
        float gradScale, SeededRandom random)
    {
        if (_tunersDisabled)
            throw new InvalidOperationException("the tuners are disabled (a reference forward); enable them before training");
        var b = Prepare(batch, PaddingFree);
        Forward(b, TunerPass.Train, random);
        return LabelLogProbsAndBackward(batch, b, objective, gradScale, backward: true, hiddenObjective).Loss;
    }

    /// <summary>
    /// The final normed hidden states [batch·length × hidden] of an evaluation forward (no dropout, no gradients), for
    /// a value head; right padding after a row's last real token is not computed and reads zero.
    /// </summary>
    public float[] FinalHidden(TrainingBatch batch)
    {
        var b = Prepare(batch, PaddingFree);
        Forward(b, TunerPass.Evaluate, null);
        return b.Layout.ToBatchRows(ComputedFinalHidden(b), Config.HiddenSize);
    }

    /// <summary>The batch's SFT loss without dropout or gradients.</summary>
    public LossResult Evaluate(TrainingBatch batch) => Evaluate(batch, new SupervisedCrossEntropy());

    /// <summary>The objective's loss of a batch without dropout or gradients (an objective that needs the log-probs first observes them).</summary>
    public LossResult Evaluate(TrainingBatch batch, ITrainingObjective objective)
    {
        batch = WithModelTunerPositions(batch);
        var b = Prepare(batch, PaddingFree);
        Forward(b, TunerPass.Evaluate, null);
        return LabelLogProbsAndBackward(batch, b, objective, 0f, backward: false).Loss;
    }

    /// <summary>
    /// An evaluation forward (no dropout, no gradients) giving what objectives need: every label token's log-prob,
    /// their sums and counts per sequence, and the final normed hidden states. With a model tuner the rows (of the
    /// labels and the hidden states) are those of the batch with the tuner's n positions before every sequence. Right
    /// padding after a row's last real token is not computed: its hidden states read zero.
    /// </summary>
    public LabelLogProbs LogProbs(TrainingBatch batch)
    {
        batch = WithModelTunerPositions(batch);
        var b = Prepare(batch, PaddingFree);
        Forward(b, TunerPass.Evaluate, null);
        var (labels, perToken, _) = LabelLogProbsAndBackward(batch, b, new SupervisedCrossEntropy(), 0f, backward: false);
        var sums = new double[batch.Batch];
        for (int i = 0; i < labels.Count; i++) sums[labels.Sequences[i]] += perToken[i];
        return new LabelLogProbs(labels, perToken, sums, b.Layout.ToBatchRows(ComputedFinalHidden(b), Config.HiddenSize));
    }

    /// <summary>
    /// Turns every tuner layer off until the returned scope is disposed, so forwards compute the base model (the
    /// reference model of preference objectives) without a second copy of the weights. Tensors trained in full
    /// (modules_to_save, full or freeze tuning) are the model's own weights and stay as trained.
    /// </summary>
    public IDisposable DisableTuners()
    {
        if (_tunersDisabled) throw new InvalidOperationException("the tuners are already disabled");
        _tunersDisabled = true;
        foreach (var linear in Linears) linear.TunersEnabled = false;
        return new TunerScope(this);
    }

    private bool _tunersDisabled;

    private sealed class TunerScope(DecoderModel decoder) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var linear in decoder.Linears) linear.TunersEnabled = true;
            decoder._tunersDisabled = false;
        }
    }

    /// <summary>
    /// The full logits [B·T × vocab] of a batch (evaluation mode) through the training forward, for checks against
    /// generation's; a model tuner's positions are computed but not returned.
    /// </summary>
    public float[] Logits(TrainingBatch batch)
    {
        int t = batch.Length, n = ActiveModelTuner?.Tokens ?? 0;
        var extended = WithModelTunerPositions(batch);
        // Every row, padding included: the checks compare all of them with transformers'.
        var b = Prepare(extended, paddingFree: false);
        Forward(b, TunerPass.Evaluate, null);
        var logits = Backend.Allocate(batch.Batch * t, Config.VocabSize);
        if (n == 0)
        {
            LmHeadForward(b.FinalNormed, batch.Batch * t, logits);
            return ToHost(logits, logits.Length);
        }
        var hidden = Backend.Allocate(batch.Batch * t, Config.HiddenSize);
        for (int s = 0; s < batch.Batch; s++)
            Backend.CopyRows(b.FinalNormed, s * (n + t) + n, hidden, s * t, t);
        LmHeadForward(hidden, batch.Batch * t, logits);
        return ToHost(logits, logits.Length);
    }

    /// <summary>
    /// The batch as the model tuner's forward sees it, PEFT's layout for prompt learning: n positions before every
    /// sequence with attention mask 1 and label −100 (their ids are placeholders: the tuner's virtual tokens replace
    /// their embeddings, or its prefix their keys and values), the real tokens from position n on. The batch itself
    /// when no model tuner is active.
    /// </summary>
    private TrainingBatch WithModelTunerPositions(TrainingBatch batch)
    {
        if (ActiveModelTuner is not { } tuner) return batch;
        if (batch.AttentionMask.AsSpan().IndexOfAnyExcept(0, 1) >= 0)
            throw new ArgumentException("a prompt-learning tuner puts its positions before a whole row, so rows packed with neat_packing cannot take one");
        int n = tuner.Tokens, t = batch.Length, width = n + t;
        var ids = new int[batch.Batch * width];
        var mask = new int[ids.Length];
        var labels = new int[ids.Length];
        var positions = new int[ids.Length];
        for (int s = 0; s < batch.Batch; s++)
        {
            Array.Fill(mask, 1, s * width, n);
            Array.Fill(labels, CausalLmLoss.IgnoreIndex, s * width, n);
            Array.Copy(batch.InputIds, s * t, ids, s * width + n, t);
            Array.Copy(batch.AttentionMask, s * t, mask, s * width + n, t);
            Array.Copy(batch.Labels, s * t, labels, s * width + n, t);
            for (int i = 0; i < width; i++)
                positions[s * width + i] = i < n ? i : n + (batch.PositionIds?[s * t + i - n] ?? i - n);
        }
        return new TrainingBatch(batch.Batch, width, ids, mask, labels) { PositionIds = positions };
    }

    /// <summary>Calls <paramref name="row"/>(computed row, tuner position) for each of the model tuner's n rows at the start of every batch row.</summary>
    private static void ForEachTunerRow(RowLayout layout, int n, Action<int, int> row)
    {
        for (int s = 0; s < layout.Batch; s++)
            for (int i = 0; i < n; i++) row(layout.Row(s * layout.Length + i), i);
    }

    /// <summary>The final normed hidden states of the computed rows [rows × hidden], read back for a host objective.</summary>
    private float[] ComputedFinalHidden(Buffers b) => ToHost(b.FinalNormed, b.Layout.Rows * Config.HiddenSize);

    private Buffers Prepare(TrainingBatch batch, bool paddingFree)
    {
        foreach (int id in batch.InputIds)
            if ((uint)id >= (uint)Config.VocabSize) throw new ArgumentException($"input id {id} is outside the vocabulary (0..{Config.VocabSize - 1})");
        foreach (int m in batch.AttentionMask)
            if (m < 0) throw new ArgumentException($"attention_mask holds {m}; it must be 0, 1, or a packed row's example number");
        foreach (int label in batch.Labels)
            if (label != CausalLmLoss.IgnoreIndex && (uint)label >= (uint)Config.VocabSize)
                throw new ArgumentException($"label {label} is outside the vocabulary (0..{Config.VocabSize - 1}) and is not -100");
        var layout = RowLayout.Of(batch, paddingFree);
        if (_buffers is null || _buffers.CapacityRows < layout.Rows)
            _buffers = new Buffers(Config, layout.Rows, GradientCheckpointing, Backend);
        _buffers.Use(layout);
        return _buffers;
    }

    private void Forward(Buffers b, TunerPass pass, SeededRandom? random)
    {
        var layout = b.Layout;
        int rows = layout.Rows, h = Config.HiddenSize;
        ActiveModelTuner?.Forward(pass, random);
        using (StepProfile.Measure(StepSection.Embedding))
        {
            GatherEmbedding(layout.Ids, b.LayerInputs[0]);
            if (ActiveModelTuner is { VirtualTokens: { } virtualTokens } tuner)
                ForEachTunerRow(layout, tuner.Tokens, (row, i) => Backend.CopyFromHost(virtualTokens.Data.AsSpan(i * h, h), b.LayerInputs[0], (long)row * h));
        }
        for (int l = 0; l < Layers.Length; l++)
            LayerForward(Layers[l], l, b.ActivationsOf(l), b.LayerInputs[l], b.LayerInputs[l + 1], b.Projected, b.Fused, b.SharedInput, rows, layout.Positions,
                b.Shape, layout, cache: null, pass, random);
        using (StepProfile.Measure(StepSection.NormsForward))
            Backend.RmsNorm(b.LayerInputs[^1], rows, FinalNorm.Data, Config.RmsNormEps, b.FinalNormed, b.FinalRms);
    }

    /// <summary>
    /// One decoder layer, the same list of backend calls for training and generation: norm → q/k/v (+ tuners) →
    /// q/k norm → RoPE → attention → o_proj → residual → norm → gate/up → SwiGLU → down → residual. Training keeps
    /// what the backward needs in <paramref name="a"/> and attends within the sequences of its <see cref="RowLayout"/>; generation
    /// (<paramref name="cache"/> given) passes activations that share buffers, appends the keys and values to the
    /// cache and attends over it, and multiplies through <see cref="TrainableLinear.Generate"/>.
    /// </summary>
    /// <summary>dst row r = the embedding row of ids[r], read from the compact matrix or the fp32 one.</summary>
    private void GatherEmbedding(ReadOnlySpan<int> ids, Tensor dst)
    {
        if (Embedding.Frozen is { } frozen) Backend.Embedding(frozen, ids, dst);
        else Backend.Embedding(Embedding.Data, ids, dst);
    }

    private void LayerForward(TrainableLayer layer, int index, LayerActivations a, Tensor input, Tensor output, Tensor projected,
        Tensor?[] fused, Tensor?[] sharedScratch, int rows, ReadOnlySpan<int> positions, AttentionShape shape, RowLayout? layout, KvCache? cache, TunerPass pass, SeededRandom? random)
    {
        var c = Config;
        float eps = c.RmsNormEps;
        void Project(TrainableLinear linear, Tensor x, Tensor y)
        {
            if (cache is not null) linear.Generate(x, rows, y);
            else linear.Forward(x, rows, y, pass, random);
        }
        // x through the Linears computing the slots, each once: a fused Linear is one product into its scratch
        // (fused[its index]), whose columns are then split into its parts' outputs.
        void ProjectParts(Tensor x, params (ProjectionSlot Slot, Tensor Output)[] outputs)
        {
            if (FuseSharedInputs && layer.SharedInput(outputs[0].Slot) is { Fusable: true } group)
            {
                var ys = group.Slots.Select(s => Array.Find(outputs, o => o.Slot == s).Output).ToArray();
                var scratch = sharedScratch[group.Index]!;
                if (cache is not null) group.Generate(Backend, x, rows, ys, scratch);
                else group.Forward(Backend, x, rows, ys, scratch, pass, random);
                return;
            }
            Span<bool> done = stackalloc bool[layer.Linears.Count];
            foreach (var (slot, y) in outputs)
            {
                var part = layer.Projections[slot];
                if (!part.IsFused)
                {
                    Project(part.Linear, x, y);
                    continue;
                }
                var whole = fused[part.Index]!;
                if (!done[part.Index]) Project(part.Linear, x, whole);
                done[part.Index] = true;
                Backend.CopyColumns(whole, part.Offset, y, 0, rows, part.Width);
            }
        }

        using (StepProfile.Measure(StepSection.NormsForward))
            Backend.RmsNorm(input, rows, layer.InputNorm.Data, eps, a.Norm1, a.Rms1);
        if (layer.QNorm is not null && layer.KNorm is not null)
        {
            ProjectParts(a.Norm1, (ProjectionSlot.Query, a.Query), (ProjectionSlot.Key, a.Key), (ProjectionSlot.Value, a.Value));
            using var norms = StepProfile.Measure(StepSection.NormsForward);
            Backend.RmsNorm(a.Query, rows * c.NumHeads, layer.QNorm.Data, eps, a.QueryRotated, a.QueryRms);
            Backend.RmsNorm(a.Key, rows * c.NumKvHeads, layer.KNorm.Data, eps, a.KeyRotated, a.KeyRms);
        }
        else
            ProjectParts(a.Norm1, (ProjectionSlot.Query, a.QueryRotated), (ProjectionSlot.Key, a.KeyRotated), (ProjectionSlot.Value, a.Value));
        using (StepProfile.Measure(StepSection.ElementwiseForward))
        {
            Backend.Rope(a.QueryRotated, rows, c.NumHeads, _rope, positions);
            Backend.Rope(a.KeyRotated, rows, c.NumKvHeads, _rope, positions);
        }
        if (cache is null && ActiveModelTuner?.KeyValuePrefix(index) is var (prefixKeys, prefixValues))
        {
            int kv = c.KvWidth;
            ForEachTunerRow(layout!, ActiveModelTuner!.Tokens, (row, i) =>
            {
                Backend.CopyFromHost(prefixKeys.Data.AsSpan(i * kv, kv), a.KeyRotated, (long)row * kv);
                Backend.CopyFromHost(prefixValues.Data.AsSpan(i * kv, kv), a.Value, (long)row * kv);
            });
        }
        using (StepProfile.Measure(StepSection.AttentionForward))
        {
            if (cache is null)
                Backend.AttentionForward(shape, layout!.Sequences, a.QueryRotated, a.KeyRotated, a.Value, a.Attention, a.LogSumExp!);
            else
            {
                Backend.AppendToCache(cache.Layers[index], a.KeyRotated, a.Value, shape.Time);
                Backend.Attention(a.QueryRotated, cache.Layers[index], shape.Batch, shape.Time, cache.KeyMask, cache.Capacity, a.Attention);
            }
        }
        ProjectParts(a.Attention, (ProjectionSlot.Output, projected));
        using (StepProfile.Measure(StepSection.ElementwiseForward))
            Backend.Sum(input, projected, rows * c.HiddenSize, a.Middle);

        using (StepProfile.Measure(StepSection.NormsForward))
            Backend.RmsNorm(a.Middle, rows, layer.PostAttentionNorm.Data, eps, a.Norm2, a.Rms2);
        ProjectParts(a.Norm2, (ProjectionSlot.Gate, a.Gate), (ProjectionSlot.Up, a.Up));
        using (StepProfile.Measure(StepSection.ElementwiseForward))
            Backend.SiluMul(a.Gate, a.Up, rows * c.IntermediateSize, a.Activation);
        ProjectParts(a.Activation, (ProjectionSlot.Down, projected));
        using (StepProfile.Measure(StepSection.ElementwiseForward))
            Backend.Sum(a.Middle, projected, rows * c.HiddenSize, output);
    }

    /// <summary>
    /// The log-prob of every label token, over chunks of label rows: a chunk's logits become log-softmax statistics,
    /// the objective gives each token's upstream gradient, and (with backward) the logits are turned into their
    /// gradient in place, which flows into the final hidden states and lm_head before the next chunk reuses the
    /// buffer. Then the backward through the final norm and the layers.
    /// </summary>
    private (LabelTokens Labels, double[] LogProbs, LossResult Loss) LabelLogProbsAndBackward(TrainingBatch batch, Buffers b,
        ITrainingObjective? objective, float gradScale, bool backward, IHiddenStateObjective? hiddenObjective = null)
    {
        int h = Config.HiddenSize, v = Config.VocabSize;
        var layout = b.Layout;
        var labels = LabelTokens.Of(batch);
        int count = objective is null ? 0 : labels.Count;
        var logProbs = new double[count];
        int rows = layout.Rows;
        // Each label token's computed row: only these go through lm_head and the loss.
        var labelRows = Array.ConvertAll(labels.Rows, layout.Row);
        // A token objective that observes its log-probs first may decide the hidden objective's loss too (PPO zeroes
        // both losses of a mini-batch whose mean ratio passes ratio_threshold), so the hidden objective comes after it.
        bool hiddenAfterObserve = backward && hiddenObjective is not null && count > 0 && objective!.NeedsLogProbsFirst;
        // The hidden objective reads and writes the batch's rows; the computed rows take its gradient (every one written).
        void ApplyHiddenObjective()
        {
            var dHidden = new float[(long)batch.Batch * batch.Length * h];
            hiddenObjective!.Apply(batch, layout.ToBatchRows(ComputedFinalHidden(b), h), gradScale, dHidden);
            var dComputed = new float[rows * h];
            layout.FromBatchRows(dHidden, h, dComputed);
            Backend.CopyFromHost(dComputed, b.DResidual, 0);
        }
        if (backward && hiddenObjective is not null && !hiddenAfterObserve) ApplyHiddenObjective();
        if (count == 0)
        {
            if (backward && hiddenObjective is not null) Backward(b);
            return (labels, logProbs, new LossResult(0, 0));
        }
        objective!.Begin(labels, gradScale);
        var lossScope = StepProfile.Measure(StepSection.LmHeadAndLoss);
        if (backward && hiddenObjective is null) Backend.ClearRows(b.DResidual, 0, rows);
        int chunk = LossChunkRows(count, v);
        if (b.ChunkLogits.Length < (long)chunk * v)
            b.AllocateLossChunk(chunk, h, v);
        if (objective.NeedsLogProbsFirst)
        {
            // With a frozen lm_head one pass does: a label row's dLogits, and so its dHidden, is linear in the token's
            // upstream gradient, so the pass backpropagates a unit gradient and scales each row once the objective has
            // seen every log-prob. A trained lm_head's weight gradient needs the true upstream, and a hidden-state
            // objective's gradient on these rows must not be scaled with them: a second pass below.
            bool scaleAfterwards = backward && !LmHead.IsTrainable && hiddenObjective is null;
            var meanLogits = new double[count];
            var rowSums = new float[chunk];
            for (int start = 0; start < count; start += chunk)
            {
                int n = Math.Min(chunk, count - start);
                for (int i = 0; i < n; i++) Backend.CopyRows(b.FinalNormed, labelRows[start + i], b.ChunkHidden, i, 1);
                LmHeadForward(b.ChunkHidden, n, b.ChunkLogits);
                Backend.RowSums(b.ChunkLogits, rowSums.AsSpan(0, n));
                for (int i = 0; i < n; i++) meanLogits[start + i] = (double)rowSums[i] / v;
                Backend.LabelLogProbs(b.ChunkLogits, n, v, labels.Targets, start, logProbs, scaleAfterwards ? UnitGradient : null);
                if (!scaleAfterwards) continue;
                LmHeadBackward(b.ChunkHidden, b.ChunkLogits, n, b.ChunkDHidden);
                for (int i = 0; i < n; i++) Backend.CopyRows(b.ChunkDHidden, i, b.DResidual, labelRows[start + i], 1);
            }
            objective.Observe(logProbs, meanLogits);
            if (hiddenAfterObserve) ApplyHiddenObjective();
            if (scaleAfterwards)
            {
                for (int i = 0; i < count; i++) Backend.ScaleRows(b.DResidual, labelRows[i], 1, objective.Gradient(i, logProbs[i]));
                lossScope.Dispose();
                Backward(b);
                return (labels, logProbs, objective.Loss(logProbs));
            }
            if (!backward)
            {
                lossScope.Dispose();
                return (labels, logProbs, objective.Loss(logProbs));
            }
        }
        for (int start = 0; start < count; start += chunk)
        {
            int n = Math.Min(chunk, count - start);
            for (int i = 0; i < n; i++) Backend.CopyRows(b.FinalNormed, labelRows[start + i], b.ChunkHidden, i, 1);
            LmHeadForward(b.ChunkHidden, n, b.ChunkLogits);
            Backend.LabelLogProbs(b.ChunkLogits, n, v, labels.Targets, start, logProbs, backward ? objective.Gradient : null);
            if (!backward) continue;
            LmHeadBackward(b.ChunkHidden, b.ChunkLogits, n, b.ChunkDHidden);
            // Added, not copied: a hidden-state objective may already have put its gradient on these rows.
            for (int i = 0; i < n; i++) Backend.AddRows(b.ChunkDHidden, i, b.DResidual, labelRows[start + i], 1);
        }
        lossScope.Dispose();
        if (backward) Backward(b);
        return (labels, logProbs, objective.Loss(logProbs));
    }

    /// <summary>An upstream gradient of 1 for every token: d(log p)/d(logits) itself.</summary>
    private static readonly Func<int, double, float> UnitGradient = (_, _) => 1f;

    /// <summary>logits [n × vocab] = hidden [n × h] · lm_headᵀ.</summary>
    private void LmHeadForward(Tensor hidden, int n, Tensor logits)
    {
        if (LmHead.Frozen is { } frozen) Backend.Linear(hidden, n, frozen, null, logits);
        else Backend.Linear(hidden, n, LmHead.Data, Config.HiddenSize, Config.VocabSize, null, logits);
    }

    /// <summary>dHidden [n × h] = dLogits · lm_head, and lm_head's gradient += dLogitsᵀ · hidden when it is trained.</summary>
    private void LmHeadBackward(Tensor hidden, Tensor dLogits, int n, Tensor dHidden)
    {
        if (LmHead.Frozen is { } frozen) Backend.LinearInputGradient(dLogits, n, frozen, dHidden, accumulate: false);
        else Backend.LinearBackward(hidden, dLogits, n, LmHead.Data, Config.HiddenSize, Config.VocabSize, LmHead.Grad, null, dHidden, accumulate: false);
    }

    private void Backward(Buffers b)
    {
        var layout = b.Layout;
        int rows = layout.Rows, h = Config.HiddenSize;
        var tuner = ActiveModelTuner;
        // A prefix is trained through every layer's attention; virtual tokens through the whole stack down to its input.
        int lowest = tuner is null ? Array.FindIndex(Layers, l => l.AttentionTrainable || l.MlpTrainable) : 0;
        bool embeddingTrainable = Embedding.IsTrainable;
        bool inputTrainable = embeddingTrainable || tuner?.VirtualTokens is not null;
        bool needBelowNorm = lowest >= 0 || embeddingTrainable;
        // dResidual holds dL/d(final normed); turn it into dL/d(last layer output).
        using (StepProfile.Measure(StepSection.NormsBackward))
            Backend.RmsNormBackward(b.LayerInputs[^1], b.DResidual, rows, FinalNorm.Data, b.FinalRms,
                needBelowNorm ? b.DResidual : null, FinalNorm.Grad);
        if (!needBelowNorm) return;
        int stop = inputTrainable ? 0 : lowest;
        for (int l = Layers.Length - 1; l >= stop; l--)
        {
            var a = b.ActivationsOf(l);
            if (GradientCheckpointing)
                LayerForward(Layers[l], l, a, b.LayerInputs[l], b.LayerInputs[l + 1], b.Projected, b.Fused, b.SharedInput, rows, layout.Positions,
                    b.Shape, layout, cache: null, TunerPass.Recompute, null);
            LayerBackward(Layers[l], b, a, b.LayerInputs[l], needInputGrad: l > lowest || inputTrainable);
            LayerBackwardDone?.Invoke(Layers[l]);
        }
        using var embeddingScope = StepProfile.Measure(StepSection.Embedding);
        if (tuner is not null)
        {
            // The tuner's rows take their gradient from the stream; their placeholder ids get none.
            if (tuner.VirtualTokens is { } virtualTokens)
                ForEachTunerRow(layout, tuner.Tokens, (row, i) =>
                {
                    Backend.AddRowsToParameter(b.DResidual, row, virtualTokens.Grad, i, 1);
                    Backend.ClearRows(b.DResidual, row, 1);
                });
            tuner.Backward();
        }
        if (Embedding.Grad is { } embeddingGrad) Backend.EmbeddingBackward(b.DResidual, layout.Ids, h, embeddingGrad);
    }

    /// <summary>dResidual: dL/d(layer output) in, dL/d(layer input) out (when needInputGrad).</summary>
    private void LayerBackward(TrainableLayer layer, Buffers b, LayerActivations a, Tensor input, bool needInputGrad)
    {
        var c = Config;
        var layout = b.Layout;
        int rows = layout.Rows;
        var prefix = ActiveModelTuner?.KeyValuePrefix(layer.Index);
        bool attentionNeedsGrad = needInputGrad || layer.AttentionTrainable || prefix is not null;

        // MLP half: output = middle + down(silu(gate(n2)) ⊙ up(n2)), n2 = norm(middle).
        BackwardParts(layer, b.Fused, b.SharedInput, a.Activation, rows, b.DActivation, accumulate: false, (ProjectionSlot.Down, b.DResidual));
        using (StepProfile.Measure(StepSection.ElementwiseBackward))
            Backend.SiluMulBackward(a.Gate, a.Up, b.DActivation, rows * c.IntermediateSize, b.DGate, b.DUp);
        BackwardParts(layer, b.Fused, b.SharedInput, a.Norm2, rows, b.DNormed, accumulate: false, (ProjectionSlot.Gate, b.DGate), (ProjectionSlot.Up, b.DUp));
        using (StepProfile.Measure(StepSection.NormsBackward))
            Backend.RmsNormBackward(a.Middle, b.DNormed, rows, layer.PostAttentionNorm.Data, a.Rms2!,
                attentionNeedsGrad ? b.DNormed : null, layer.PostAttentionNorm.Grad);
        if (!attentionNeedsGrad) return;
        using (StepProfile.Measure(StepSection.ElementwiseBackward))
            Backend.Add(b.DResidual, b.DNormed, rows * c.HiddenSize);

        // Attention half: middle = input + o(attention(rope(q), rope(k), v)), q/k/v from n1 = norm(input).
        BackwardParts(layer, b.Fused, b.SharedInput, a.Attention, rows, b.DAttention, accumulate: false, (ProjectionSlot.Output, b.DResidual));
        using (StepProfile.Measure(StepSection.AttentionBackward))
            Backend.AttentionBackward(b.Shape, layout.Sequences, a.QueryRotated, a.KeyRotated, a.Value, a.Attention, a.LogSumExp!,
                b.DAttention, b.DQuery, b.DKey, b.DValue, b.DKeyPerHead, b.DValuePerHead);
        if (prefix is var (prefixKeys, prefixValues))
        {
            // The prefix replaced these rows' keys and values after RoPE: their gradient is the prefix's, and nothing
            // flows from them into the rows' own projections.
            int kv = c.KvWidth;
            ForEachTunerRow(layout, ActiveModelTuner!.Tokens, (row, i) =>
            {
                Backend.AddRowsToParameter(b.DKey, row, prefixKeys.Grad, i, 1);
                Backend.AddRowsToParameter(b.DValue, row, prefixValues.Grad, i, 1);
                Backend.ClearRows(b.DKey, row, 1);
                Backend.ClearRows(b.DValue, row, 1);
            });
        }
        using (StepProfile.Measure(StepSection.ElementwiseBackward))
        {
            Backend.Rope(b.DQuery, rows, c.NumHeads, _rope, layout.Positions, inverse: true);
            Backend.Rope(b.DKey, rows, c.NumKvHeads, _rope, layout.Positions, inverse: true);
        }
        if (layer.QNorm is not null && layer.KNorm is not null)
        {
            using var norms = StepProfile.Measure(StepSection.NormsBackward);
            Backend.RmsNormBackward(a.Query, b.DQuery, rows * c.NumHeads, layer.QNorm.Data, a.QueryRms!, b.DQuery, layer.QNorm.Grad);
            Backend.RmsNormBackward(a.Key, b.DKey, rows * c.NumKvHeads, layer.KNorm.Data, a.KeyRms!, b.DKey, layer.KNorm.Grad);
        }
        bool needNormGrad = needInputGrad || layer.InputNorm.IsTrainable;
        Tensor? dNormed = needNormGrad ? b.DNormed : null;
        BackwardParts(layer, b.Fused, b.SharedInput, a.Norm1, rows, dNormed, accumulate: false,
            (ProjectionSlot.Query, b.DQuery), (ProjectionSlot.Key, b.DKey), (ProjectionSlot.Value, b.DValue));
        if (!needNormGrad) return;
        using (StepProfile.Measure(StepSection.NormsBackward))
            Backend.RmsNormBackward(input, b.DNormed, rows, layer.InputNorm.Data, a.Rms1!,
                needInputGrad ? b.DNormed : null, layer.InputNorm.Grad);
        if (!needInputGrad) return;
        using (StepProfile.Measure(StepSection.ElementwiseBackward))
            Backend.Add(b.DResidual, b.DNormed, rows * c.HiddenSize);
    }

    /// <summary>
    /// The backward of the Linears computing the slots, each once, from each slot's output gradient: a fused Linear's
    /// parts' gradients are gathered into its scratch (fused[its index]) for one backward. dL/dx goes to dx (the first
    /// Linear's added when accumulate, the others' always added) unless dx is null.
    /// </summary>
    private void BackwardParts(TrainableLayer layer, Tensor?[] fused, Tensor?[] sharedScratch, Tensor x, int rows, Tensor? dx, bool accumulate,
        params (ProjectionSlot Slot, Tensor Gradient)[] gradients)
    {
        if (FuseSharedInputs && layer.SharedInput(gradients[0].Slot) is { Fusable: true } group)
        {
            var dys = group.Slots.Select(s => Array.Find(gradients, g => g.Slot == s).Gradient).ToArray();
            group.Backward(Backend, x, dys, rows, sharedScratch[group.Index]!, dx, accumulate);
            return;
        }
        Span<bool> done = stackalloc bool[layer.Linears.Count];
        foreach (var (slot, dy) in gradients)
        {
            var part = layer.Projections[slot];
            if (done[part.Index]) continue;
            done[part.Index] = true;
            Tensor linearDy = dy;
            if (part.IsFused)
            {
                var whole = fused[part.Index]!;
                foreach (var (otherSlot, other) in layer.Projections)
                    if (other.Index == part.Index)
                        Backend.CopyColumns(Array.Find(gradients, g => g.Slot == otherSlot).Gradient, 0, whole, other.Offset, rows, other.Width);
                linearDy = whole;
            }
            part.Linear.Backward(x, linearDy, rows, dx, accumulate);
            accumulate = true;
        }
    }

    /// <summary>
    /// The activations of one layer's forward, backend tensors: in training, what its backward needs, each in a buffer
    /// of its own; in generation, views that share the few buffers a forward needs, with nothing kept for a backward.
    /// </summary>
    private sealed class LayerActivations
    {
        public readonly Tensor Norm1;
        public readonly Tensor? Rms1;
        /// <summary>q/k projections before Qwen3's q/k norm (unused without it).</summary>
        public readonly Tensor Query;
        public readonly Tensor Key;
        public readonly Tensor? QueryRms;
        public readonly Tensor? KeyRms;
        public readonly Tensor QueryRotated;
        public readonly Tensor KeyRotated;
        public readonly Tensor Value;
        public readonly Tensor? LogSumExp;
        public readonly Tensor Attention;
        public readonly Tensor Middle;
        public readonly Tensor Norm2;
        public readonly Tensor? Rms2;
        public readonly Tensor Gate;
        public readonly Tensor Up;
        public readonly Tensor Activation;

        /// <summary>Training: every activation in its own buffer of <paramref name="rows"/> rows.</summary>
        public LayerActivations(ModelConfig c, int rows, IComputeBackend backend)
        {
            Norm1 = backend.Allocate(rows, c.HiddenSize);
            Rms1 = backend.Allocate(rows);
            Query = backend.Allocate(c.HasQkNorm ? rows : 0, c.QueryWidth);
            Key = backend.Allocate(c.HasQkNorm ? rows : 0, c.KvWidth);
            QueryRms = backend.Allocate(c.HasQkNorm ? rows : 0, c.NumHeads);
            KeyRms = backend.Allocate(c.HasQkNorm ? rows : 0, c.NumKvHeads);
            QueryRotated = backend.Allocate(rows, c.QueryWidth);
            KeyRotated = backend.Allocate(rows, c.KvWidth);
            Value = backend.Allocate(rows, c.KvWidth);
            LogSumExp = backend.Allocate(rows, c.NumHeads);
            Attention = backend.Allocate(rows, c.QueryWidth);
            Middle = backend.Allocate(rows, c.HiddenSize);
            Norm2 = backend.Allocate(rows, c.HiddenSize);
            Rms2 = backend.Allocate(rows);
            Gate = backend.Allocate(rows, c.IntermediateSize);
            Up = backend.Allocate(rows, c.IntermediateSize);
            Activation = backend.Allocate(rows, c.IntermediateSize);
        }

        /// <summary>
        /// Generation: both norms in one buffer, q and k normed and rotated in place, the attention's residual added
        /// into the residual stream, SwiGLU written over gate; no statistics kept.
        /// </summary>
        public LayerActivations(GenerationBuffers w)
        {
            Norm1 = Norm2 = w.Normed;
            Query = QueryRotated = w.Query;
            Key = KeyRotated = w.Key;
            Value = w.Value;
            Attention = w.Attention;
            Middle = w.Residual;
            Gate = Activation = w.Gate;
            Up = w.Up;
        }
    }

    /// <summary>Per Linear of a layer (declaration order), [rows × its output] for a fused one, null for the others.</summary>
    private static Tensor?[] FusedScratch(ModelConfig c, int rows, IComputeBackend backend) =>
        c.Description.Linears.Select(l => l.IsFused ? backend.Allocate(rows, DecoderArchitecture.Shape(c, l).Out) : null).ToArray();

    /// <summary>The buffers of a generation forward, sized for a number of rows and reused while it suffices.</summary>
    private sealed class GenerationBuffers
    {
        public int Rows { get; }
        public Tensor Residual { get; }
        public Tensor Normed { get; }
        public Tensor Query { get; }
        public Tensor Key { get; }
        public Tensor Value { get; }
        public Tensor Attention { get; }
        public Tensor Projected { get; }
        /// <summary>Per Linear of a layer, the scratch of a fused one's whole output (null for the others).</summary>
        public Tensor?[] Fused { get; }
        /// <summary>Per group of Linears reading one input, the scratch of their stacked product (<see cref="SharedInputLinears.Scratch"/>).</summary>
        public Tensor?[] SharedInput { get; }
        public Tensor Gate { get; }
        public Tensor Up { get; }
        public LayerActivations Activations { get; }

        public GenerationBuffers(ModelConfig c, int rows, IComputeBackend backend)
        {
            Rows = rows;
            Residual = backend.Allocate(rows, c.HiddenSize);
            Normed = backend.Allocate(rows, c.HiddenSize);
            Query = backend.Allocate(rows, c.QueryWidth);
            Key = backend.Allocate(rows, c.KvWidth);
            Value = backend.Allocate(rows, c.KvWidth);
            Attention = backend.Allocate(rows, c.QueryWidth);
            Projected = backend.Allocate(rows, c.HiddenSize);
            Fused = FusedScratch(c, rows, backend);
            SharedInput = SharedInputLinears.Scratch(c, rows, backend);
            Gate = backend.Allocate(rows, c.IntermediateSize);
            Up = backend.Allocate(rows, c.IntermediateSize);
            Activations = new LayerActivations(this);
        }
    }

    /// <summary>
    /// Every buffer of a training step, allocated by the backend up front for a number of rows (batch × length) and
    /// reused by every batch that fits: each layer's input, the per-layer activations (one shared set under gradient
    /// checkpointing), the gradient buffers and the loss chunk's. Kernels address rows from the start of a buffer, so a
    /// smaller batch uses a prefix; the rows are those of the batch's <see cref="RowLayout"/>.
    /// </summary>
    private sealed class Buffers
    {
        private readonly LayerActivations[] _activations;
        public int CapacityRows { get; }
        public AttentionShape Shape { get; private set; }
        public RowLayout Layout { get; private set; } = null!;
        public Tensor[] LayerInputs { get; }
        public Tensor FinalNormed { get; }
        public Tensor FinalRms { get; }
        public Tensor Projected { get; }
        /// <summary>Per Linear of a layer, a fused one's whole output in the forward and its gradient in the backward (null for the others).</summary>
        public Tensor?[] Fused { get; }
        /// <summary>Per group of Linears reading one input, their stacked product in the forward and its gradient in the backward.</summary>
        public Tensor?[] SharedInput { get; }
        public Tensor DResidual { get; }
        public Tensor DNormed { get; }
        public Tensor DAttention { get; }
        public Tensor DQuery { get; }
        public Tensor DKey { get; }
        public Tensor DValue { get; }
        public Tensor DKeyPerHead { get; }
        public Tensor DValuePerHead { get; }
        public Tensor DGate { get; }
        public Tensor DUp { get; }
        public Tensor DActivation { get; }
        public Tensor ChunkHidden { get; private set; }
        public Tensor ChunkLogits { get; private set; }
        public Tensor ChunkDHidden { get; private set; }

        private readonly ModelConfig _config;
        private readonly IComputeBackend _backend;

        public Buffers(ModelConfig c, int rows, bool checkpointing, IComputeBackend backend)
        {
            _config = c;
            _backend = backend;
            CapacityRows = rows;
            LayerInputs = Enumerable.Range(0, c.NumLayers + 1).Select(_ => backend.Allocate(rows, c.HiddenSize)).ToArray();
            _activations = Enumerable.Range(0, checkpointing ? 1 : c.NumLayers).Select(_ => new LayerActivations(c, rows, backend)).ToArray();
            FinalNormed = backend.Allocate(rows, c.HiddenSize);
            FinalRms = backend.Allocate(rows);
            Projected = backend.Allocate(rows, c.HiddenSize);
            Fused = FusedScratch(c, rows, backend);
            SharedInput = SharedInputLinears.Scratch(c, rows, backend);
            DResidual = backend.Allocate(rows, c.HiddenSize);
            DNormed = backend.Allocate(rows, c.HiddenSize);
            DAttention = backend.Allocate(rows, c.QueryWidth);
            DQuery = backend.Allocate(rows, c.QueryWidth);
            DKey = backend.Allocate(rows, c.KvWidth);
            DValue = backend.Allocate(rows, c.KvWidth);
            DKeyPerHead = backend.Allocate(rows, c.QueryWidth);
            DValuePerHead = backend.Allocate(rows, c.QueryWidth);
            DGate = backend.Allocate(rows, c.IntermediateSize);
            DUp = backend.Allocate(rows, c.IntermediateSize);
            DActivation = backend.Allocate(rows, c.IntermediateSize);
            ChunkHidden = ChunkLogits = ChunkDHidden = backend.Allocate(0, c.HiddenSize);
        }

        public void Use(RowLayout layout)
        {
            Layout = layout;
            Shape = new AttentionShape(layout.Sequences.Count, layout.LongestSequence, _config.NumHeads, _config.NumKvHeads, _config.HeadDim);
        }

        public LayerActivations ActivationsOf(int layer) => _activations[_activations.Length == 1 ? 0 : layer];

        public void AllocateLossChunk(int rows, int hidden, int vocab)
        {
            ChunkHidden = _backend.Allocate(rows, hidden);
            ChunkLogits = _backend.Allocate(rows, vocab);
            ChunkDHidden = _backend.Allocate(rows, hidden);
        }

        /// <summary>Values <see cref="AllocateLossChunk"/> allocates.</summary>
        public static long LossChunkValues(int rows, int hidden, int vocab) => 2L * rows * hidden + (long)rows * vocab;

        /// <summary>
        /// Values (4 bytes each) held by every tensor of this object, found by walking its fields, so that a buffer
        /// added later is counted without anyone remembering to.
        /// </summary>
        public long AllocatedValues => CountValues(this);

        private static long CountValues(object owner) =>
            owner.GetType().GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public)
                .Sum(f => f.GetValue(owner) switch
                {
                    Tensor tensor => tensor.Length,
                    Tensor[] tensors => tensors.Sum(t => (long)(t?.Length ?? 0)),
                    LayerActivations[] sets => sets.Sum(CountValues),
                    _ => 0L,
                });
    }
}
