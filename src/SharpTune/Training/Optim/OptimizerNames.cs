using SharpTune.Hparams;
using SharpTune.Model;

namespace SharpTune.Training.Optim;

/// <summary>The <c>optim</c> values SharpTune implements (transformers' OptimizerNames spelling) and the factory.</summary>
public static class OptimizerNames
{
    /// <summary>torch.optim.AdamW with fp32 moments (transformers' default).</summary>
    public const string AdamWTorch = "adamw_torch";
    /// <summary>bitsandbytes' 8-bit blockwise AdamW (<see cref="Optim.AdamW8Bit"/>).</summary>
    public const string AdamW8Bit = "adamw_8bit";
    /// <summary>AdamW with fp32 moments in a paged, file-backed mapping (<see cref="PagedStateStorage"/>).</summary>
    public const string PagedAdamW32Bit = "paged_adamw_32bit";
    /// <summary>8-bit AdamW with its codes and scales in a paged, file-backed mapping.</summary>
    public const string PagedAdamW8Bit = "paged_adamw_8bit";

    public static IReadOnlyList<string> Supported { get; } = [AdamWTorch, AdamW8Bit, PagedAdamW32Bit, PagedAdamW8Bit];

    /// <summary>Bytes of state optimizer <paramref name="name"/> keeps for parameters of these lengths (paged or not).</summary>
    public static long StateBytes(string name, IEnumerable<int> parameterLengths) => name switch
    {
        AdamWTorch or PagedAdamW32Bit => Optim.AdamW.StateBytesFor(parameterLengths),
        AdamW8Bit or PagedAdamW8Bit => Optim.AdamW8Bit.StateBytesFor(parameterLengths),
        _ => throw Unsupported(name),
    };

    /// <summary>Whether optimizer <paramref name="name"/> keeps its state in a paged, file-backed mapping the kernel may evict.</summary>
    public static bool IsPaged(string name) => name is PagedAdamW32Bit or PagedAdamW8Bit;

    /// <summary>
    /// The optimizer for <paramref name="name"/> (one of <see cref="Supported"/>) over <paramref name="parameters"/>,
    /// with the adam_beta1/adam_beta2/adam_epsilon/weight_decay of <paramref name="args"/>.
    /// </summary>
    public static IOptimizer Create(string name, IReadOnlyList<Parameter> parameters, TrainingArguments args)
    {
        var hyperparameters = new AdamWHyperparameters(args.AdamBeta1, args.AdamBeta2, args.AdamEpsilon, args.WeightDecay);
        return name switch
        {
            AdamWTorch => new AdamW(parameters, hyperparameters, paged: false),
            PagedAdamW32Bit => new AdamW(parameters, hyperparameters, paged: true),
            AdamW8Bit => new AdamW8Bit(parameters, hyperparameters, paged: false),
            PagedAdamW8Bit => new AdamW8Bit(parameters, hyperparameters, paged: true),
            _ => throw Unsupported(name),
        };
    }

    private static ArgumentException Unsupported(string name) =>
        new($"optim '{name}' is not supported (supported: {string.Join(", ", Supported)})");
}
