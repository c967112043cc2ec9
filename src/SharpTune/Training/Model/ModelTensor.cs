using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;

namespace SharpTune.Training.Model;

/// <summary>
/// One weight of the trainable decoder under its Hugging Face name. Small tensors (norms, biases) are fp32 arrays;
/// a frozen matrix stays compact as an <see cref="IFrozenMatrix"/> (bf16/fp16 as stored in the checkpoint, or
/// quantised) and becomes an fp32 array only when a method trains it or folds an adapter into it. It becomes a
/// <see cref="Parameter"/> (sharing the fp32 array) only when a fine-tuning method marks it trainable, so frozen
/// weights carry no gradient buffer.
/// </summary>
public sealed class ModelTensor
{
    private float[]? _data;

    /// <summary>An fp32 tensor.</summary>
    public ModelTensor(string name, int[] shape, float[] data)
    {
        Name = name;
        Shape = shape;
        Length = ShapeLength(shape);
        if (data.Length != Length) throw new ArgumentException($"tensor '{name}': {data.Length} values do not fill shape [{string.Join(", ", shape)}]");
        _data = data;
    }

    /// <summary>A frozen matrix kept compact; quantized marks storage that can never be trained or written back.</summary>
    public ModelTensor(string name, IFrozenMatrix frozen, bool quantized)
    {
        Name = name;
        Shape = [frozen.Rows, frozen.Cols];
        Length = (long)frozen.Rows * frozen.Cols;
        Frozen = frozen;
        IsQuantized = quantized;
    }

    public string Name { get; }
    public int[] Shape { get; }
    public long Length { get; }

    /// <summary>The compact storage while the matrix is frozen and not materialised; null for an fp32 tensor.</summary>
    public IFrozenMatrix? Frozen { get; private set; }

    public bool IsQuantized { get; private set; }

    /// <summary>The fp32 values; a compact matrix has none until <see cref="Materialize"/>.</summary>
    public float[] Data => _data ?? throw new InvalidOperationException($"'{Name}' is kept compact; materialize it before using fp32 values");

    public Parameter? Parameter { get; private set; }

    public bool IsTrainable => Parameter is not null;
    public float[]? Grad => Parameter?.Grad;

    /// <summary>Bytes the tensor's values occupy: the compact storage, or 4 per fp32 value.</summary>
    public long StorageBytes => Frozen?.StorageBytes ?? Length * sizeof(float);

    /// <summary>Biases and norm weights, which transformers' Trainer exempts from weight decay.</summary>
    public bool IsBiasOrNorm => Name.EndsWith(".bias", StringComparison.Ordinal) || Name.EndsWith("norm.weight", StringComparison.Ordinal);

    /// <summary>
    /// The fp32 values, widening a compact matrix once into an fp32 array that replaces it (for training it in full
    /// or folding an adapter into it). Quantised weights have lost their exact values and are refused.
    /// </summary>
    public float[] Materialize()
    {
        if (_data is not null) return _data;
        if (IsQuantized)
            throw new InvalidOperationException($"'{Name}' is quantised; quantised weights cannot be trained or changed (QLoRA trains only the LoRA adapters)");
        var frozen = Frozen!;
        var data = new float[Length];
        frozen.ReadRows(0, frozen.Rows, data);
        _data = data;
        Frozen = null;
        return data;
    }

    /// <summary>
    /// Puts other values in place of a frozen tensor's: an adapter's modules_to_save tensor (kept as an fp32
    /// <see cref="StoredMatrix"/> for a matrix, so generation multiplies it as it does a stored one), or the same
    /// matrix copied into huge pages. A trained tensor shares its array with its parameter and is refused.
    /// </summary>
    public void Replace(IFrozenMatrix frozen)
    {
        RefuseTrained();
        if (frozen.Rows != Shape[0] || frozen.Cols != Shape[1])
            throw new ArgumentException($"tensor '{Name}': a [{frozen.Rows}, {frozen.Cols}] matrix cannot replace shape [{string.Join(", ", Shape)}]");
        _data = null;
        Frozen = frozen;
        IsQuantized = false;
    }

    /// <summary>Puts fp32 values (a norm weight or bias from an adapter's modules_to_save) in place of a frozen tensor's.</summary>
    public void Replace(float[] data)
    {
        RefuseTrained();
        if (data.Length != Length) throw new ArgumentException($"tensor '{Name}': {data.Length} values do not fill shape [{string.Join(", ", Shape)}]");
        _data = data;
        Frozen = null;
        IsQuantized = false;
    }

    private void RefuseTrained()
    {
        if (Parameter is not null) throw new InvalidOperationException($"'{Name}' is being trained; its values cannot be replaced");
    }

    /// <summary>Marks the tensor trainable (materialising it); the parameter is named parameterName (a PEFT key) or the HF name.</summary>
    public Parameter MakeTrainable(string? parameterName = null) =>
        Parameter ??= new Parameter(parameterName ?? Name, Shape, Materialize()) { WeightDecay = !IsBiasOrNorm };

    /// <summary>The values encoded in dtype for saving; a matrix kept as stored, already in that dtype, is copied byte for byte.</summary>
    public unsafe ReadOnlyMemory<byte> Encode(DType dtype)
    {
        if (_data is not null) return SafetensorsWriter.EncodeFloat32(_data, dtype);
        WeightMatrix? kept = Frozen switch
        {
            StoredMatrix stored => stored.Matrix,
            Bf16ComputeMatrix bf16 => bf16.Matrix,
            _ => null,
        };
        if (kept is WeightMatrix matrix && matrix.DType == dtype)
            return new ReadOnlySpan<byte>(matrix.Data, checked((int)((long)matrix.Rows * matrix.Cols * DTypeInfo.SizeOf(dtype)))).ToArray();
        if (IsQuantized)
            throw new InvalidOperationException($"'{Name}' is quantised; quantised weights cannot be saved as model weights");
        var values = new float[Length];
        Frozen!.ReadRows(0, Frozen.Rows, values);
        return SafetensorsWriter.EncodeFloat32(values, dtype);
    }

    private static long ShapeLength(int[] shape)
    {
        long length = 1;
        foreach (int d in shape) length *= d;
        return length;
    }
}
