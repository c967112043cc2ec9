namespace SharpTune.Training.Model;

/// <summary>Why a forward pass runs, which decides what an adapter's dropout does.</summary>
public enum AdapterPass
{
    /// <summary>No dropout, nothing kept for a backward.</summary>
    Evaluate,
    /// <summary>Draws fresh dropout masks.</summary>
    Train,
    /// <summary>Gradient checkpointing recomputes a layer: the masks of the training pass are reused.</summary>
    Recompute,
}

/// <summary>A trainable addition to a frozen or trainable Linear (LoRA): y += f(x), with its own backward.</summary>
public interface ILinearAdapter
{
    IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Adds the adapter's output for x [rows × in] to y [rows × out].</summary>
    void Forward(float[] x, int rows, float[] y, AdapterPass pass, SeededRandom? random);

    /// <summary>Accumulates the adapter's parameter gradients from dy and, when dx is given, adds its share of dL/dx.</summary>
    void Backward(float[] x, float[] dy, int rows, float[]? dx);
}
