using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Training.Optim;

/// <summary>
/// An optimizer over a fixed list of parameters, as the trainer drives it: <see cref="Update"/> once per optimizer
/// step from the parameters' gradients, and its whole state exported to and restored from checkpoints exactly.
/// Disposing releases the state (for the paged optimizers, their temporary file).
/// </summary>
public interface IOptimizer : IDisposable
{
    /// <summary>The <c>optim</c> value this optimizer implements (<see cref="OptimizerNames"/>).</summary>
    string Name { get; }

    /// <summary>
    /// The layout of <see cref="StateTensors"/>: optimizers with the same format restore each other's checkpoints
    /// (a paged optimizer and its unpaged counterpart share one).
    /// </summary>
    string StateFormat { get; }

    IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Optimizer steps taken so far.</summary>
    long Step { get; }

    /// <summary>Bytes of optimizer state (moments, 8-bit codes and their block scales).</summary>
    long StateBytes { get; }

    /// <summary>One update of every parameter from its Grad, at learning rate lr.</summary>
    void Update(double lr);

    /// <summary>
    /// Every state tensor, named uniquely, with its data read in place from the optimizer's storage: valid until the
    /// next <see cref="Update"/>, <see cref="Restore"/> or <see cref="Dispose"/>.
    /// </summary>
    IReadOnlyList<OptimizerStateTensor> StateTensors { get; }

    /// <summary>
    /// Restores the step count and every state tensor: <paramref name="read"/> is called once per entry of
    /// <see cref="StateTensors"/> to fill its bytes.
    /// </summary>
    void Restore(long step, OptimizerStateReader read);
}

/// <summary>One tensor of optimizer state as checkpoints store it.</summary>
public sealed record OptimizerStateTensor(string Name, DType DType, long[] Shape, ReadOnlyMemory<byte> Data);

/// <summary>Fills <paramref name="destination"/> (exactly the tensor's byte size) with the saved bytes of <paramref name="tensor"/>.</summary>
public delegate void OptimizerStateReader(OptimizerStateTensor tensor, Span<byte> destination);
