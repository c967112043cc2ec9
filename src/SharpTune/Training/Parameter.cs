namespace SharpTune.Training;

/// <summary>
/// One trainable tensor: fp32 master values, a gradient buffer of the same size, and the name it is saved under
/// (the Hugging Face parameter name for full/freeze fine-tuning, the PEFT key for adapter weights).
/// </summary>
public sealed class Parameter
{
    public string Name { get; }
    public int[] Shape { get; }
    public float[] Data { get; }
    public float[] Grad { get; }

    /// <summary>Whether the optimizer applies weight decay (transformers' Trainer exempts biases and norm weights).</summary>
    public bool WeightDecay { get; init; } = true;

    public Parameter(string name, int[] shape, float[] data)
    {
        long length = 1;
        foreach (int d in shape) length *= d;
        if (length != data.Length)
            throw new ArgumentException($"parameter '{name}': {data.Length} values do not fill shape [{string.Join(", ", shape)}]");
        Name = name;
        Shape = (int[])shape.Clone();
        Data = data;
        Grad = new float[data.Length];
    }

    public int Length => Data.Length;

    public void ZeroGrad() => Array.Clear(Grad);
}
