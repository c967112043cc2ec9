using SharpTune.Distributed;
using SharpTune.Model;

namespace SharpTune.Training.Trainer;

/// <summary>
/// Data-parallel gradients as torch's DistributedDataParallel averages them: the trainable parameters in reverse
/// order (the order the backward finishes them) are grouped into buckets of about <see cref="BucketBytes"/>; after
/// the backward of the micro-batch that ends an optimizer step, <see cref="Average"/> copies each bucket's gradients
/// into one pinned buffer and starts its sum over the ranks (MPI_Iallreduce) before it fills the next, so a bucket
/// travels while the next is copied; then it waits for all and writes each gradient back divided by the world
/// size, before clipping and the optimizer step. Every rank starts the buckets in the same order.
/// </summary>
public sealed class GradientAverager
{
    /// <summary>DistributedDataParallel's default bucket_cap_mb.</summary>
    public const long BucketBytes = 25L << 20;

    private readonly ProcessGroup _group;
    private readonly Bucket[] _buckets;

    public GradientAverager(ProcessGroup group, IReadOnlyList<Parameter> parameters)
    {
        _group = group;
        var buckets = new List<Bucket>();
        var members = new List<Parameter>();
        long bytes = 0;
        for (int i = parameters.Count - 1; i >= 0; i--)
        {
            members.Add(parameters[i]);
            bytes += 4L * parameters[i].Length;
            if (bytes >= BucketBytes || i == 0)
            {
                buckets.Add(new Bucket([.. members]));
                members.Clear();
                bytes = 0;
            }
        }
        _buckets = [.. buckets];
    }

    /// <summary>Every gradient replaced by its mean over the ranks.</summary>
    public void Average()
    {
        _group.WaitAll(_buckets.Select(Start).ToList());
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
        }
    }

    private PendingSum Start(Bucket bucket)
    {
        int offset = 0;
        foreach (var p in bucket.Parameters)
        {
            p.Grad.CopyTo(bucket.Buffer, offset);
            offset += p.Length;
        }
        return _group.StartSum(bucket.Buffer, offset);
    }

    private sealed class Bucket(Parameter[] parameters)
    {
        public Parameter[] Parameters { get; } = parameters;
        /// <summary>Pinned, so MPI may read and write it while this process goes on.</summary>
        public float[] Buffer { get; } = GC.AllocateUninitializedArray<float>(checked((int)parameters.Sum(p => (long)p.Length)), pinned: true);
    }
}
