namespace SharpTune.Model;

/// <summary>
/// One trainable tensor: fp32 master values, a gradient buffer of the same size, and the name it is saved under
/// (the Hugging Face parameter name for full/freeze fine-tuning, the PEFT key for tuner weights).
/// </summary>
public sealed class Parameter
{
    private float[]? _grad;

    public string Name { get; }
    public int[] Shape { get; }
    public float[] Data { get; }

    /// <summary>
    /// The gradient, allocated on first use: a tuner applied for inference (chat, serving, merging) never touches
    /// it, so its parameters cost no gradient memory there.
    /// </summary>
    public float[] Grad => _grad ?? LazyInitializer.EnsureInitialized(ref _grad, () => new float[Data.Length]);

    /// <summary>Whether the optimizer applies weight decay (transformers' Trainer exempts biases and norm weights).</summary>
    public bool WeightDecay { get; init; } = true;

    /// <summary>
    /// The factor on the schedule's learning rate for this parameter: torch's parameter groups with their own lr
    /// (LoRA+, <c>Training/Optim/LoraPlus</c>). Read once when an optimizer is made, as torch fixes groups then.
    /// </summary>
    public double LearningRateScale { get; set; } = 1;

    public Parameter(string name, int[] shape, float[] data)
    {
        long length = 1;
        foreach (int d in shape) length *= d;
        if (length != data.Length)
            throw new ArgumentException($"parameter '{name}': {data.Length} values do not fill shape [{string.Join(", ", shape)}]");
        Name = name;
        Shape = (int[])shape.Clone();
        Data = data;
    }

    public int Length => Data.Length;

    public void ZeroGrad()
    {
        if (_grad is not null) Array.Clear(_grad);
    }
}
