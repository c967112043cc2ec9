namespace SharpTune.Training.Model;

/// <summary>
/// One fp32 weight of the trainable decoder under its Hugging Face name. It becomes a <see cref="Parameter"/>
/// (sharing the same array) only when a fine-tuning method marks it trainable, so frozen weights carry no
/// gradient buffer.
/// </summary>
public sealed class ModelTensor(string name, int[] shape, float[] data)
{
    public string Name { get; } = name;
    public int[] Shape { get; } = shape;
    public float[] Data { get; } = data;
    public Parameter? Parameter { get; private set; }

    public bool IsTrainable => Parameter is not null;
    public float[]? Grad => Parameter?.Grad;

    /// <summary>Biases and norm weights, which transformers' Trainer exempts from weight decay.</summary>
    public bool IsBiasOrNorm => Name.EndsWith(".bias", StringComparison.Ordinal) || Name.EndsWith("norm.weight", StringComparison.Ordinal);

    /// <summary>Marks the tensor trainable; the parameter is named parameterName (a PEFT key) or the HF name.</summary>
    public Parameter MakeTrainable(string? parameterName = null) =>
        Parameter ??= new Parameter(parameterName ?? Name, Shape, Data) { WeightDecay = !IsBiasOrNorm };
}
