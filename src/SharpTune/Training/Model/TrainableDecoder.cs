using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Quantization;
using SharpTune.Training.Objectives;

namespace SharpTune.Training.Model;

/// <summary>
/// The decoder (Qwen2, Llama, Qwen3) for training: every weight is a <see cref="ModelTensor"/> under its Hugging Face
/// name. The checkpoint stays memory-mapped for the model's lifetime: frozen matrices are multiplied straight from
/// it (bf16/fp16 as stored, or quantised projections for QLoRA) and frozen embedding rows are read from it, so only
/// what is trained, the norms and the biases are fp32 arrays. The forward computes what <see cref="DecoderModel"/>
/// computes, and the backward produces gradients only where something is trainable. Positions are 0..T-1 in every
/// row, as transformers uses without position_ids.
/// </summary>
public sealed class TrainableDecoder : IDisposable
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

    private readonly DecoderWeights _stored;
    private readonly RopeTable _rope;
    private Buffers? _buffers;

    private TrainableDecoder(string directory, ModelConfig config, DecoderWeights stored, QuantizationOptions? quantization,
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
    /// bf16: true. Frozen bf16 weights are multiplied in bf16 (<see cref="Bf16ComputeMatrix"/>) when this machine has
    /// a bf16 GEMM (<see cref="Bf16ComputeMatrix.AvailableKernel"/>); otherwise, and for other dtypes, in fp32.
    /// </param>
    public static TrainableDecoder Load(string directory, bool gradientCheckpointing, QuantizationOptions? quantization = null,
        bool bf16Compute = false)
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
            return Bind(directory, c, weights, gradientCheckpointing, quantization, bf16Compute ? Bf16ComputeMatrix.AvailableKernel : null);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    private static TrainableDecoder Bind(string directory, ModelConfig c, DecoderWeights weights, bool gradientCheckpointing,
        QuantizationOptions? quantization, OneDnnGemmKernel? bf16Kernel)
    {
        var backend = CpuBackend.CreateDefault();
        IFrozenMatrix Frozen(WeightMatrix matrix) =>
            bf16Kernel is not null && matrix.DType == DType.BF16 ? new Bf16ComputeMatrix(matrix, bf16Kernel) : new StoredMatrix(matrix);
        ModelTensor Vector(string name, float[] values) => new(name, [values.Length], values);
        TrainableLinear Linear(string path, WeightMatrix matrix, float[]? bias) =>
            new(path, matrix.Cols, matrix.Rows, backend, Stored(path + ".weight", matrix), bias is null ? null : Vector(path + ".bias", bias));
        // A layer projection: the stored matrix, or its quantised form.
        ModelTensor Stored(string name, WeightMatrix matrix) =>
            quantization is null
                ? new ModelTensor(name, Frozen(matrix), quantized: false)
                : new ModelTensor(name, MappedQuantization.Quantize(matrix, quantization), quantized: true);

        var arch = c.Description;
        var embedding = new ModelTensor(arch.EmbeddingTensor, Frozen(weights.Embedding), quantized: false);
        var lmHead = c.TieWordEmbeddings ? embedding : new ModelTensor(arch.LmHeadTensor, Frozen(weights.LmHead), quantized: false);
        var layers = new TrainableLayer[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
        {
            int layer = i;
            var w = weights.Layers[i];
            TrainableLinear Projection(ProjectionSlot slot, WeightMatrix matrix, float[]? bias) =>
                Linear(arch.LayerTensor(layer, arch.Projection(slot).Module), matrix, bias);
            ModelTensor Norm(NormSlot slot, float[] values) => Vector(arch.LayerTensor(layer, arch.Norm(slot).WeightName), values);
            layers[i] = new TrainableLayer
            {
                Index = i,
                InputNorm = Norm(NormSlot.Input, w.InputNorm),
                QProj = Projection(ProjectionSlot.Query, w.QProj, w.QBias),
                KProj = Projection(ProjectionSlot.Key, w.KProj, w.KBias),
                VProj = Projection(ProjectionSlot.Value, w.VProj, w.VBias),
                OProj = Projection(ProjectionSlot.Output, w.OProj, w.OBias),
                QNorm = w.QNorm is null ? null : Norm(NormSlot.QueryNorm, w.QNorm),
                KNorm = w.KNorm is null ? null : Norm(NormSlot.KeyNorm, w.KNorm),
                PostAttentionNorm = Norm(NormSlot.PostAttention, w.PostAttentionNorm),
                GateProj = Projection(ProjectionSlot.Gate, w.GateProj, w.GateBias),
                UpProj = Projection(ProjectionSlot.Up, w.UpProj, w.UpBias),
                DownProj = Projection(ProjectionSlot.Down, w.DownProj, w.DownBias),
            };
        }
        var finalNorm = Vector(arch.FinalNormTensor, weights.FinalNorm);
        return new TrainableDecoder(directory, c, weights, quantization, embedding, lmHead, finalNorm, layers, gradientCheckpointing, backend);
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
        sizeof(float) * rows * new Buffers(config, 1, gradientCheckpointing).AllocatedValues;

    /// <summary>Label rows per loss chunk, for a batch whose labels sit on <paramref name="labelRows"/> rows.</summary>
    public static int LossChunkRows(int labelRows, int vocab) => Math.Clamp(Math.Max(MinLossChunkRows, LossChunkFloats / vocab), 1, labelRows);

    /// <summary>Bytes of the loss chunk buffers (hidden rows, their logits, their gradient) for a chunk of <paramref name="chunkRows"/>.</summary>
    public static long LossChunkBytes(ModelConfig config, int chunkRows) => sizeof(float) * Buffers.LossChunkValues(chunkRows, config.HiddenSize, config.VocabSize);

    /// <summary>Bytes the weights occupy (compact storage plus fp32 tensors), each tensor once.</summary>
    public long StorageBytes => Tensors.Sum(t => t.StorageBytes);

    /// <summary>Closes the memory-mapped checkpoint; the model cannot be used afterwards.</summary>
    public void Dispose() => _stored.Dispose();

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
        var b = Prepare(batch);
        Forward(batch, b, TunerPass.Train, random);
        return LabelLogProbsAndBackward(batch, b, objective, gradScale, backward: true).Loss;
    }

    /// <summary>The batch's SFT loss without dropout or gradients.</summary>
    public LossResult Evaluate(TrainingBatch batch)
    {
        var b = Prepare(batch);
        Forward(batch, b, TunerPass.Evaluate, null);
        return LabelLogProbsAndBackward(batch, b, new SupervisedCrossEntropy(), 0f, backward: false).Loss;
    }

    /// <summary>
    /// An evaluation forward (no dropout, no gradients) giving what objectives need: every label token's log-prob,
    /// their sums and counts per sequence, and the final normed hidden states.
    /// </summary>
    public LabelLogProbs LogProbs(TrainingBatch batch)
    {
        var b = Prepare(batch);
        Forward(batch, b, TunerPass.Evaluate, null);
        var (labels, perToken, _) = LabelLogProbsAndBackward(batch, b, new SupervisedCrossEntropy(), 0f, backward: false);
        var sums = new double[batch.Batch];
        for (int i = 0; i < labels.Count; i++) sums[labels.Sequences[i]] += perToken[i];
        var hidden = b.FinalNormed.AsSpan(0, batch.Batch * batch.Length * Config.HiddenSize).ToArray();
        return new LabelLogProbs(labels, perToken, sums, hidden);
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

    private sealed class TunerScope(TrainableDecoder decoder) : IDisposable
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

    /// <summary>The full logits [B·T × vocab] of a batch (evaluation mode), for checks against the inference model.</summary>
    public float[] Logits(TrainingBatch batch)
    {
        var b = Prepare(batch);
        Forward(batch, b, TunerPass.Evaluate, null);
        var logits = new float[(long)batch.Batch * batch.Length * Config.VocabSize];
        LmHeadForward(b.FinalNormed, batch.Batch * batch.Length, logits);
        return logits;
    }

    private Buffers Prepare(TrainingBatch batch)
    {
        foreach (int id in batch.InputIds)
            if ((uint)id >= (uint)Config.VocabSize) throw new ArgumentException($"input id {id} is outside the vocabulary (0..{Config.VocabSize - 1})");
        foreach (int m in batch.AttentionMask)
            if (m is not (0 or 1)) throw new ArgumentException($"attention_mask holds {m}; it must be 0 or 1");
        foreach (int label in batch.Labels)
            if (label != CausalLmLoss.IgnoreIndex && (uint)label >= (uint)Config.VocabSize)
                throw new ArgumentException($"label {label} is outside the vocabulary (0..{Config.VocabSize - 1}) and is not -100");
        int rows = batch.Batch * batch.Length;
        if (_buffers is null || _buffers.CapacityRows < rows)
            _buffers = new Buffers(Config, rows, GradientCheckpointing);
        _buffers.Use(batch.Batch, batch.Length);
        return _buffers;
    }

    private void Forward(TrainingBatch batch, Buffers b, TunerPass pass, SeededRandom? random)
    {
        int rows = batch.Batch * batch.Length, h = Config.HiddenSize;
        for (int r = 0; r < rows; r++) b.Positions[r] = r % batch.Length;
        using (StepProfile.Measure(StepSection.Embedding))
        {
            if (Embedding.Frozen is { } frozen)
                for (int r = 0; r < rows; r++) frozen.ReadRows(batch.InputIds[r], 1, b.LayerInputs[0].AsSpan(r * h, h));
            else
                for (int r = 0; r < rows; r++) Array.Copy(Embedding.Data, (long)batch.InputIds[r] * h, b.LayerInputs[0], (long)r * h, h);
        }
        for (int l = 0; l < Layers.Length; l++)
            LayerForward(Layers[l], batch, b, b.ActivationsOf(l), b.LayerInputs[l], b.LayerInputs[l + 1], pass, random);
        using (StepProfile.Measure(StepSection.NormsForward))
            Backend.RmsNorm(b.LayerInputs[^1], rows, FinalNorm.Data, Config.RmsNormEps, b.FinalNormed, b.FinalRms);
    }

    private void LayerForward(TrainableLayer layer, TrainingBatch batch, Buffers b, LayerActivations a, float[] input, float[] output,
        TunerPass pass, SeededRandom? random)
    {
        var c = Config;
        int rows = batch.Batch * batch.Length;
        float eps = c.RmsNormEps;
        using (StepProfile.Measure(StepSection.NormsForward))
            Backend.RmsNorm(input, rows, layer.InputNorm.Data, eps, a.Norm1, a.Rms1);
        if (layer.QNorm is not null && layer.KNorm is not null)
        {
            layer.QProj.Forward(a.Norm1, rows, a.Query, pass, random);
            layer.KProj.Forward(a.Norm1, rows, a.Key, pass, random);
            using var norms = StepProfile.Measure(StepSection.NormsForward);
            Backend.RmsNorm(a.Query, rows * c.NumHeads, layer.QNorm.Data, eps, a.QueryRotated, a.QueryRms);
            Backend.RmsNorm(a.Key, rows * c.NumKvHeads, layer.KNorm.Data, eps, a.KeyRotated, a.KeyRms);
        }
        else
        {
            layer.QProj.Forward(a.Norm1, rows, a.QueryRotated, pass, random);
            layer.KProj.Forward(a.Norm1, rows, a.KeyRotated, pass, random);
        }
        layer.VProj.Forward(a.Norm1, rows, a.Value, pass, random);
        using (StepProfile.Measure(StepSection.ElementwiseForward))
        {
            Backend.Rope(a.QueryRotated, rows, c.NumHeads, _rope, b.Positions);
            Backend.Rope(a.KeyRotated, rows, c.NumKvHeads, _rope, b.Positions);
        }
        using (StepProfile.Measure(StepSection.AttentionForward))
            Backend.AttentionForward(b.Shape, a.QueryRotated, a.KeyRotated, a.Value, batch.AttentionMask, a.Attention, a.LogSumExp);
        layer.OProj.Forward(a.Attention, rows, b.Projected, pass, random);
        using (StepProfile.Measure(StepSection.ElementwiseForward))
            Backend.Sum(input, b.Projected, rows * c.HiddenSize, a.Middle);

        using (StepProfile.Measure(StepSection.NormsForward))
            Backend.RmsNorm(a.Middle, rows, layer.PostAttentionNorm.Data, eps, a.Norm2, a.Rms2);
        layer.GateProj.Forward(a.Norm2, rows, a.Gate, pass, random);
        layer.UpProj.Forward(a.Norm2, rows, a.Up, pass, random);
        using (StepProfile.Measure(StepSection.ElementwiseForward))
            Backend.SiluMul(a.Gate, a.Up, rows * c.IntermediateSize, a.Activation);
        layer.DownProj.Forward(a.Activation, rows, b.Projected, pass, random);
        using (StepProfile.Measure(StepSection.ElementwiseForward))
            Backend.Sum(a.Middle, b.Projected, rows * c.HiddenSize, output);
    }

    /// <summary>
    /// The log-prob of every label token, over chunks of label rows: a chunk's logits become log-softmax statistics,
    /// the objective gives each token's upstream gradient, and (with backward) the logits are turned into their
    /// gradient in place, which flows into the final hidden states and lm_head before the next chunk reuses the
    /// buffer. Then the backward through the final norm and the layers.
    /// </summary>
    private (LabelTokens Labels, double[] LogProbs, LossResult Loss) LabelLogProbsAndBackward(TrainingBatch batch, Buffers b,
        ITrainingObjective objective, float gradScale, bool backward)
    {
        int t = batch.Length, h = Config.HiddenSize, v = Config.VocabSize;
        var labels = LabelTokens.Of(batch);
        int count = labels.Count;
        var logProbs = new double[count];
        if (count == 0) return (labels, logProbs, new LossResult(0, 0));
        objective.Begin(labels, gradScale);
        int rows = batch.Batch * t;
        var lossScope = StepProfile.Measure(StepSection.LmHeadAndLoss);
        if (backward) Array.Clear(b.DResidual, 0, rows * h);
        int chunk = LossChunkRows(count, v);
        if (b.ChunkLogits.Length < (long)chunk * v)
            b.AllocateLossChunk(chunk, h, v);
        for (int start = 0; start < count; start += chunk)
        {
            int n = Math.Min(chunk, count - start);
            for (int i = 0; i < n; i++)
                Array.Copy(b.FinalNormed, labels.Rows[start + i] * h, b.ChunkHidden, i * h, h);
            LmHeadForward(b.ChunkHidden, n, b.ChunkLogits);
            Backend.LabelLogProbs(b.ChunkLogits, n, v, labels.Targets, start, logProbs, backward ? objective.Gradient : null);
            if (!backward) continue;
            LmHeadBackward(b.ChunkHidden, b.ChunkLogits, n, b.ChunkDHidden);
            for (int i = 0; i < n; i++)
                Array.Copy(b.ChunkDHidden, i * h, b.DResidual, labels.Rows[start + i] * h, h);
        }
        lossScope.Dispose();
        if (backward) Backward(batch, b);
        return (labels, logProbs, objective.Loss(logProbs));
    }

    /// <summary>logits [n × vocab] = hidden [n × h] · lm_headᵀ.</summary>
    private void LmHeadForward(float[] hidden, int n, float[] logits)
    {
        if (LmHead.Frozen is { } frozen) frozen.MultiplyTransposed(hidden, n, logits);
        else Backend.Linear(hidden, n, LmHead.Data, Config.HiddenSize, Config.VocabSize, null, logits);
    }

    /// <summary>dHidden [n × h] = dLogits · lm_head, and lm_head's gradient += dLogitsᵀ · hidden when it is trained.</summary>
    private void LmHeadBackward(float[] hidden, float[] dLogits, int n, float[] dHidden)
    {
        if (LmHead.Frozen is { } frozen) frozen.Multiply(dLogits, n, dHidden, accumulate: false);
        else Backend.LinearBackward(hidden, dLogits, n, LmHead.Data, Config.HiddenSize, Config.VocabSize, LmHead.Grad, null, dHidden, accumulate: false);
    }

    private void Backward(TrainingBatch batch, Buffers b)
    {
        int rows = batch.Batch * batch.Length, h = Config.HiddenSize;
        int lowest = Array.FindIndex(Layers, l => l.AttentionTrainable || l.MlpTrainable);
        bool embeddingTrainable = Embedding.IsTrainable;
        bool needBelowNorm = lowest >= 0 || embeddingTrainable;
        // dResidual holds dL/d(final normed); turn it into dL/d(last layer output).
        using (StepProfile.Measure(StepSection.NormsBackward))
            Backend.RmsNormBackward(b.LayerInputs[^1], b.DResidual, rows, FinalNorm.Data, b.FinalRms,
                needBelowNorm ? b.DResidual : null, FinalNorm.Grad);
        if (!needBelowNorm) return;
        int stop = embeddingTrainable ? 0 : lowest;
        for (int l = Layers.Length - 1; l >= stop; l--)
        {
            var a = b.ActivationsOf(l);
            if (GradientCheckpointing)
                LayerForward(Layers[l], batch, b, a, b.LayerInputs[l], b.LayerInputs[l + 1], TunerPass.Recompute, null);
            LayerBackward(Layers[l], batch, b, a, b.LayerInputs[l], needInputGrad: l > lowest || embeddingTrainable);
        }
        using var embeddingScope = StepProfile.Measure(StepSection.Embedding);
        if (Embedding.Grad is { } embeddingGrad) Backend.EmbeddingBackward(b.DResidual, batch.InputIds.AsSpan(0, rows), h, embeddingGrad);
    }

    /// <summary>dResidual: dL/d(layer output) in, dL/d(layer input) out (when needInputGrad).</summary>
    private void LayerBackward(TrainableLayer layer, TrainingBatch batch, Buffers b, LayerActivations a, float[] input, bool needInputGrad)
    {
        var c = Config;
        int rows = batch.Batch * batch.Length;
        bool attentionNeedsGrad = needInputGrad || layer.AttentionTrainable;

        // MLP half: output = middle + down(silu(gate(n2)) ⊙ up(n2)), n2 = norm(middle).
        layer.DownProj.Backward(a.Activation, b.DResidual, rows, b.DActivation, accumulate: false);
        using (StepProfile.Measure(StepSection.ElementwiseBackward))
            Backend.SiluMulBackward(a.Gate, a.Up, b.DActivation, rows * c.IntermediateSize, b.DGate, b.DUp);
        layer.GateProj.Backward(a.Norm2, b.DGate, rows, b.DNormed, accumulate: false);
        layer.UpProj.Backward(a.Norm2, b.DUp, rows, b.DNormed, accumulate: true);
        using (StepProfile.Measure(StepSection.NormsBackward))
            Backend.RmsNormBackward(a.Middle, b.DNormed, rows, layer.PostAttentionNorm.Data, a.Rms2,
                attentionNeedsGrad ? b.DNormed : null, layer.PostAttentionNorm.Grad);
        if (!attentionNeedsGrad) return;
        using (StepProfile.Measure(StepSection.ElementwiseBackward))
            Backend.Add(b.DResidual, b.DNormed, rows * c.HiddenSize);

        // Attention half: middle = input + o(attention(rope(q), rope(k), v)), q/k/v from n1 = norm(input).
        layer.OProj.Backward(a.Attention, b.DResidual, rows, b.DAttention, accumulate: false);
        using (StepProfile.Measure(StepSection.AttentionBackward))
            Backend.AttentionBackward(b.Shape, a.QueryRotated, a.KeyRotated, a.Value, batch.AttentionMask, a.Attention, a.LogSumExp,
                b.DAttention, b.DQuery, b.DKey, b.DValue, b.DKeyPerHead, b.DValuePerHead);
        using (StepProfile.Measure(StepSection.ElementwiseBackward))
        {
            Backend.Rope(b.DQuery, rows, c.NumHeads, _rope, b.Positions, inverse: true);
            Backend.Rope(b.DKey, rows, c.NumKvHeads, _rope, b.Positions, inverse: true);
        }
        if (layer.QNorm is not null && layer.KNorm is not null)
        {
            using var norms = StepProfile.Measure(StepSection.NormsBackward);
            Backend.RmsNormBackward(a.Query, b.DQuery, rows * c.NumHeads, layer.QNorm.Data, a.QueryRms, b.DQuery, layer.QNorm.Grad);
            Backend.RmsNormBackward(a.Key, b.DKey, rows * c.NumKvHeads, layer.KNorm.Data, a.KeyRms, b.DKey, layer.KNorm.Grad);
        }
        bool needNormGrad = needInputGrad || layer.InputNorm.IsTrainable;
        float[]? dNormed = needNormGrad ? b.DNormed : null;
        layer.QProj.Backward(a.Norm1, b.DQuery, rows, dNormed, accumulate: false);
        layer.KProj.Backward(a.Norm1, b.DKey, rows, dNormed, accumulate: true);
        layer.VProj.Backward(a.Norm1, b.DValue, rows, dNormed, accumulate: true);
        if (!needNormGrad) return;
        using (StepProfile.Measure(StepSection.NormsBackward))
            Backend.RmsNormBackward(input, b.DNormed, rows, layer.InputNorm.Data, a.Rms1,
                needInputGrad ? b.DNormed : null, layer.InputNorm.Grad);
        if (!needInputGrad) return;
        using (StepProfile.Measure(StepSection.ElementwiseBackward))
            Backend.Add(b.DResidual, b.DNormed, rows * c.HiddenSize);
    }

    /// <summary>The activations one layer's backward needs.</summary>
    private sealed class LayerActivations(ModelConfig c, int rows)
    {
        public readonly float[] Norm1 = new float[rows * c.HiddenSize];
        public readonly float[] Rms1 = new float[rows];
        /// <summary>q/k projections before Qwen3's q/k norm (unused without it).</summary>
        public readonly float[] Query = c.HasQkNorm ? new float[rows * c.QueryWidth] : [];
        public readonly float[] Key = c.HasQkNorm ? new float[rows * c.KvWidth] : [];
        public readonly float[] QueryRms = c.HasQkNorm ? new float[rows * c.NumHeads] : [];
        public readonly float[] KeyRms = c.HasQkNorm ? new float[rows * c.NumKvHeads] : [];
        public readonly float[] QueryRotated = new float[rows * c.QueryWidth];
        public readonly float[] KeyRotated = new float[rows * c.KvWidth];
        public readonly float[] Value = new float[rows * c.KvWidth];
        public readonly float[] LogSumExp = new float[rows * c.NumHeads];
        public readonly float[] Attention = new float[rows * c.QueryWidth];
        public readonly float[] Middle = new float[rows * c.HiddenSize];
        public readonly float[] Norm2 = new float[rows * c.HiddenSize];
        public readonly float[] Rms2 = new float[rows];
        public readonly float[] Gate = new float[rows * c.IntermediateSize];
        public readonly float[] Up = new float[rows * c.IntermediateSize];
        public readonly float[] Activation = new float[rows * c.IntermediateSize];
    }

    /// <summary>
    /// Every buffer of a training step, sized up front for a number of rows (batch × length) and reused by every batch
    /// that fits: each layer's input, the per-layer activations (one shared set under gradient checkpointing), and the
    /// gradient buffers. Kernels address rows from the start of a buffer, so a smaller batch uses a prefix.
    /// </summary>
    private sealed class Buffers
    {
        private readonly LayerActivations[] _activations;
        public int CapacityRows { get; }
        public AttentionShape Shape { get; private set; }
        public int[] Positions { get; }
        public float[][] LayerInputs { get; }
        public float[] FinalNormed { get; }
        public float[] FinalRms { get; }
        public float[] Projected { get; }
        public float[] DResidual { get; }
        public float[] DNormed { get; }
        public float[] DAttention { get; }
        public float[] DQuery { get; }
        public float[] DKey { get; }
        public float[] DValue { get; }
        public float[] DKeyPerHead { get; }
        public float[] DValuePerHead { get; }
        public float[] DGate { get; }
        public float[] DUp { get; }
        public float[] DActivation { get; }
        public float[] ChunkHidden { get; private set; } = [];
        public float[] ChunkLogits { get; private set; } = [];
        public float[] ChunkDHidden { get; private set; } = [];

        private readonly ModelConfig _config;

        public Buffers(ModelConfig c, int rows, bool checkpointing)
        {
            _config = c;
            CapacityRows = rows;
            Positions = new int[rows];
            LayerInputs = Enumerable.Range(0, c.NumLayers + 1).Select(_ => new float[rows * c.HiddenSize]).ToArray();
            _activations = Enumerable.Range(0, checkpointing ? 1 : c.NumLayers).Select(_ => new LayerActivations(c, rows)).ToArray();
            FinalNormed = new float[rows * c.HiddenSize];
            FinalRms = new float[rows];
            Projected = new float[rows * c.HiddenSize];
            DResidual = new float[rows * c.HiddenSize];
            DNormed = new float[rows * c.HiddenSize];
            DAttention = new float[rows * c.QueryWidth];
            DQuery = new float[rows * c.QueryWidth];
            DKey = new float[rows * c.KvWidth];
            DValue = new float[rows * c.KvWidth];
            DKeyPerHead = new float[rows * c.QueryWidth];
            DValuePerHead = new float[rows * c.QueryWidth];
            DGate = new float[rows * c.IntermediateSize];
            DUp = new float[rows * c.IntermediateSize];
            DActivation = new float[rows * c.IntermediateSize];
        }

        public void Use(int batch, int time) => Shape = new AttentionShape(batch, time, _config.NumHeads, _config.NumKvHeads, _config.HeadDim);

        public LayerActivations ActivationsOf(int layer) => _activations[_activations.Length == 1 ? 0 : layer];

        public void AllocateLossChunk(int rows, int hidden, int vocab)
        {
            ChunkHidden = new float[rows * hidden];
            ChunkLogits = new float[(long)rows * vocab];
            ChunkDHidden = new float[rows * hidden];
        }

        /// <summary>Values <see cref="AllocateLossChunk"/> allocates.</summary>
        public static long LossChunkValues(int rows, int hidden, int vocab) => 2L * rows * hidden + (long)rows * vocab;

        /// <summary>
        /// Values (4 bytes each: floats, and the int positions) held by every buffer of this object, found by walking
        /// its fields, so that a buffer added later is counted without anyone remembering to.
        /// </summary>
        public long AllocatedValues => CountValues(this);

        private static long CountValues(object owner) =>
            owner.GetType().GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public)
                .Sum(f => f.GetValue(owner) switch
                {
                    float[] floats => floats.LongLength,
                    int[] ints => ints.LongLength,
                    float[][] arrays => arrays.Sum(a => a.LongLength),
                    LayerActivations[] sets => sets.Sum(CountValues),
                    _ => 0L,
                });
    }
}
