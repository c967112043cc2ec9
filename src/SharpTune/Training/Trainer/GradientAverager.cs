using SharpTune.Distributed;
using SharpTune.Model;
using SharpTune.Training.Model;

namespace SharpTune.Training.Trainer;

/// <summary>
/// Data-parallel gradients as torch's DistributedDataParallel averages them: the trainable parameters in the order
/// the backward finishes them (reverse order, by layer from the last; those outside the layers last) are grouped
/// into buckets of about <see cref="BucketBytes"/>. During
/// the backward of the micro-batch that ends an optimizer step (<see cref="OverlapNextBackward"/>), a bucket whose
/// parameters' layers have all finished their backward is copied into one pinned buffer and its sum over the ranks
/// started (MPI_Iallreduce), so it travels while the layers below are computed; <see cref="Average"/> starts the
/// rest, waits for all, and writes each gradient back divided by the world size, before clipping and the optimizer
/// step. Buckets start strictly in order, as DDP launches them: MPI matches collectives by their order on each rank,
/// and a rank whose batch had no label tokens (no backward) starts them all in <see cref="Average"/>.
/// </summary>
public sealed class GradientAverager
{
    /// <summary>DistributedDataParallel's default bucket_cap_mb.</summary>
    public const long BucketBytes = 25L << 20;

    private readonly ProcessGroup _group;
    private readonly Bucket[] _buckets;
    private readonly Dictionary<Parameter, Bucket> _bucketOf = new(ReferenceEqualityComparer.Instance);
    private readonly List<PendingSum> _started = [];
    private int _nextBucket;
    /// <summary>Of each parameter a layer holds, how many layers hold it (a tuner may share one across layers).</summary>
    private readonly Dictionary<Parameter, int> _holders = new(ReferenceEqualityComparer.Instance);
    /// <summary>Of each parameter, the layers that have not finished this backward.</summary>
    private readonly Dictionary<Parameter, int> _pendingLayers = new(ReferenceEqualityComparer.Instance);
    private readonly DecoderModel? _decoder;
    private readonly HashSet<int> _layersDone = [];

    /// <param name="decoder">The model's decoder, whose layer backwards the sums overlap; null: they start in <see cref="Average"/>.</param>
    public GradientAverager(ProcessGroup group, IReadOnlyList<Parameter> parameters, DecoderModel? decoder = null)
    {
        _group = group;
        _decoder = decoder;
        var trainable = parameters.ToHashSet(ReferenceEqualityComparer.Instance);
        // The lowest layer holding each parameter: its gradient is final once that layer's backward is done.
        var lowestHolder = new Dictionary<Parameter, int>(ReferenceEqualityComparer.Instance);
        foreach (var layer in decoder?.Layers ?? [])
            foreach (var p in LayerParameters(layer).Where(trainable.Contains).Distinct(ReferenceEqualityComparer.Instance).Cast<Parameter>())
            {
                _holders[p] = _holders.GetValueOrDefault(p) + 1;
                lowestHolder[p] = Math.Min(lowestHolder.GetValueOrDefault(p, int.MaxValue), layer.Index);
            }
        // Reverse order, the layers' parameters first as their layers finish, the rest (embedding, final norm, head,
        // whole-model tuners) in the last buckets, which start when the backward is over.
        var order = parameters.Reverse().OrderBy(p => lowestHolder.ContainsKey(p) ? 0 : 1)
            .ThenByDescending(p => lowestHolder.GetValueOrDefault(p)).ToList();
        var buckets = new List<Bucket>();
        var members = new List<Parameter>();
        long bytes = 0;
        for (int i = 0; i < order.Count; i++)
        {
            members.Add(order[i]);
            bytes += 4L * order[i].Length;
            if (bytes >= BucketBytes || i == order.Count - 1)
            {
                buckets.Add(new Bucket([.. members]));
                members.Clear();
                bytes = 0;
            }
        }
        _buckets = [.. buckets];
        foreach (var bucket in _buckets)
            foreach (var p in bucket.Parameters) _bucketOf[p] = bucket;
    }

    private static IEnumerable<Parameter> LayerParameters(TrainableLayer layer) =>
        layer.Tensors.Select(t => t.Parameter).OfType<Parameter>()
            .Concat(layer.Linears.SelectMany(linear => linear.Tuners.SelectMany(tuner => tuner.Parameters)));

    /// <summary>
    /// The next backward of the decoder is the last before <see cref="Average"/>: buckets start as its layers finish.
    /// </summary>
    public void OverlapNextBackward()
    {
        if (_decoder is null) return;
        foreach (var (p, holders) in _holders) _pendingLayers[p] = holders;
        _layersDone.Clear();
        _decoder.LayerBackwardDone = LayerDone;
    }

    private void LayerDone(TrainableLayer layer)
    {
        // A second backward would add to gradients already sent: refuse rather than average stale sums.
        if (!_layersDone.Add(layer.Index))
            throw new InvalidOperationException($"layer {layer.Index} finished a second backward in the micro-batch that ends the optimizer step; data-parallel training sends each layer's gradients after its one backward there");
        foreach (var p in LayerParameters(layer).Distinct(ReferenceEqualityComparer.Instance).Cast<Parameter>())
            if (_pendingLayers.TryGetValue(p, out int pending) && pending > 0)
            {
                _pendingLayers[p] = pending - 1;
                if (pending == 1) _bucketOf[p].Ready++;
            }
        while (_nextBucket < _buckets.Length && _buckets[_nextBucket].Ready == _buckets[_nextBucket].Parameters.Length)
            Start(_buckets[_nextBucket++]);
    }

    /// <summary>Every gradient replaced by its mean over the ranks.</summary>
    public void Average()
    {
        if (_decoder is not null) _decoder.LayerBackwardDone = null;
        while (_nextBucket < _buckets.Length) Start(_buckets[_nextBucket++]);
        _group.WaitAll(_started);
        _started.Clear();
        _nextBucket = 0;
        float scale = 1f / _group.Size;
        foreach (var bucket in _buckets)
        {
            int offset = 0;
            foreach (var p in bucket.Parameters)
            {
                var grad = p.Grad;
                var summed = bucket.Buffer.AsSpan(offset, grad.Length);
                System.Numerics.Tensors.TensorPrimitives.Multiply(summed, scale, grad);
                offset += grad.Length;
            }
            bucket.Ready = 0;
        }
    }

    private void Start(Bucket bucket)
    {
        int offset = 0;
        foreach (var p in bucket.Parameters)
        {
            p.Grad.CopyTo(bucket.Buffer, offset);
            offset += p.Length;
        }
        _started.Add(_group.StartSum(bucket.Buffer, offset));
    }

    private sealed class Bucket(Parameter[] parameters)
    {
        public Parameter[] Parameters { get; } = parameters;
        /// <summary>Pinned, so MPI may read and write it while this process goes on.</summary>
        public float[] Buffer { get; } = GC.AllocateUninitializedArray<float>(checked((int)parameters.Sum(p => (long)p.Length)), pinned: true);
        /// <summary>Its parameters whose every layer has finished the backward being overlapped.</summary>
        public int Ready { get; set; }
    }
}
