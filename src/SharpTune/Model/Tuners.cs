using SharpTune.Engine;
using SharpTune.Training;

namespace SharpTune.Model;

/// <summary>Why a forward pass runs, which decides what a tuner's dropout does.</summary>
public enum TunerPass
{
    /// <summary>No dropout, nothing kept for a backward (evaluation, generation).</summary>
    Evaluate,
    /// <summary>Draws fresh dropout masks and keeps what the backward needs.</summary>
    Train,
    /// <summary>Gradient checkpointing recomputes a layer: the masks of the training pass are reused.</summary>
    Recompute,
}

/// <summary>
/// A tuner layer on one base Linear (PEFT's tuner layer: LoRA today): the same object serves training (forward,
/// backward, trainable parameters named by their PEFT keys), unmerged inference (the forward of an evaluation pass,
/// several tuners stacking on one Linear in the order applied) and merging (folded into the base weight, or taken out
/// again). The Linear maps x through the input-side hooks of the tuners that have one (<see cref="TransformInput"/>),
/// computes y = base(x'), then each tuner's <see cref="Forward"/> on the same x'; the backward runs the base's first,
/// then each tuner's, then the input-side hooks' in reverse.
/// </summary>
public interface ILinearTuner
{
    /// <summary>The wrapped Linear's module path in the base model, e.g. a layer's q_proj.</summary>
    string ModulePath { get; }

    int InFeatures { get; }
    int OutFeatures { get; }

    /// <summary>The trainable tensors, named by the keys they are saved under.</summary>
    IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>
    /// Whether the tuner has an input side (<see cref="TransformInput"/>; IA3 on the feed-forward Linears); the
    /// projection skips the input hooks of those that do not (LoRA), so they cost nothing.
    /// </summary>
    bool TransformsInput => false;

    /// <summary>
    /// Input-side hook, called in order before the base product: the input that the base and every later tuner see for
    /// x [rows × in] (IA3: x ⊙ l), in a backend tensor of whole rows that the tuner keeps until its next call.
    /// </summary>
    Tensor TransformInput(Tensor x, int rows, TunerPass pass) => x;

    /// <summary>
    /// Backward of <see cref="TransformInput"/> for the x it was given: accumulates the parameter gradients from dInput
    /// (dL/d of the transformed input) and writes dL/dx [rows × in] to dx. Called only for a tuner that
    /// <see cref="TransformsInput"/>.
    /// </summary>
    void TransformInputBackward(Tensor x, Tensor dInput, int rows, Tensor dx) =>
        throw new NotSupportedException($"{ModulePath}: the tuner has no input side to differentiate");

    /// <summary>
    /// Output-side hook: y [rows × out] holds the base product (and earlier tuners' work) for x [rows × in]; the tuner
    /// adds to it (LoRA's s·B·A·x) or rescales it in place.
    /// </summary>
    void Forward(Tensor x, int rows, Tensor y, TunerPass pass, SeededRandom? random);

    /// <summary>
    /// Whether what <see cref="Forward"/> makes of y depends on y itself (IA3 on the output side rescales it, a
    /// bottleneck adapter adds up(act(down(y)))) rather than only adding a function of x (LoRA): then what the base and
    /// the earlier tuners produced reaches the loss through this tuner, so the projection's backward asks
    /// <see cref="OutputGradient"/> for their dy, running the tuners from last to first before the base's.
    /// </summary>
    bool TransformsOutput => false;

    /// <summary>
    /// For a tuner that <see cref="TransformsOutput"/>: writes dL/d(y as this tuner received it) to dyBefore [rows × out]
    /// from dy, dL/d(y as it left it), for the y of the last training or recompute pass.
    /// </summary>
    void OutputGradient(Tensor dy, int rows, Tensor dyBefore) =>
        throw new NotSupportedException($"{ModulePath}: the tuner does not transform its output");

    /// <summary>
    /// After a training forward: accumulates the parameter gradients from dy (dL/d of this tuner's output) and, when dx
    /// is given, adds this tuner's share of dL/dx to it.
    /// </summary>
    void Backward(Tensor x, Tensor dy, int rows, Tensor? dx);

    /// <summary>
    /// Called once when the tuner is put on a Linear, before its first forward, with that Linear's base weight and bias
    /// (<paramref name="linear"/>) and the tuners already on it (<paramref name="applied"/>): for tuners whose output
    /// depends on the base weight (DoRA's weight norm). Throws <see cref="InvalidOperationException"/> with the reason
    /// when the tuner cannot follow those already applied.
    /// </summary>
    void AttachTo(ILinearBase linear, IReadOnlyList<ILinearTuner> applied)
    {
    }

    /// <summary>
    /// Merged-weight hook: folds the tuner into the base weight [out × in] and, when the Linear has one, its bias [out]
    /// (merge_and_unload; IA3 on the output side scales the bias too).
    /// </summary>
    void MergeInto(float[] weight, float[]? bias);

    /// <summary>Takes a merged tuner out of the base weight and bias again (PEFT's unmerge), up to rounding.</summary>
    void UnmergeFrom(float[] weight, float[]? bias);
}

/// <summary>
/// The base Linear under a tuner (y = x·Wᵀ + b), as a tuner that depends on its weight reads it: the weight as the
/// model currently holds it (stored, quantised, or fp32 after an earlier adapter was merged into it), never copied whole
/// by the Linear.
/// </summary>
public interface ILinearBase
{
    int InFeatures { get; }
    int OutFeatures { get; }

    /// <summary>The bias [out], or null when the Linear has none.</summary>
    float[]? Bias { get; }

    /// <summary>Writes rows [firstRow, firstRow + count) of W widened to fp32 (a quantised weight dequantised) into destination.</summary>
    void ReadWeightRows(int firstRow, int count, Span<float> destination);

    /// <summary>y [rows × out] = x [rows × in] · Wᵀ, without the bias: the base product of another input.</summary>
    void Multiply(Tensor x, int rows, Tensor y);

    /// <summary>dx [rows × in] += dy [rows × out] · W, the input gradient of the base product for another dy.</summary>
    void AddInputGradient(Tensor dy, int rows, Tensor dx);
}

/// <summary>
/// A model-level tuner (prompt tuning and P-tuning: virtual tokens; prefix tuning: key/value prefixes), for the
/// methods that add positions rather than wrap a Linear. The decoder puts <see cref="VirtualTokens"/> in front of each
/// sequence's input embeddings (after the embedding lookup, before the first layer) and
/// <see cref="KeyValuePrefix"/> in front of each layer's keys and values (where the layer appends to its key/value
/// cache), visible to every query through the attention's key mask; both are the trainable parameters' values, so their
/// gradients flow back to them.
/// </summary>
public interface IModelTuner
{
    /// <summary>The trainable tensors, named by the keys they are saved under.</summary>
    IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Virtual-token embeddings [tokens × hidden] put before the input embeddings, or null when the tuner adds none.</summary>
    Parameter? VirtualTokens { get; }

    /// <summary>
    /// Layer <paramref name="layer"/>'s key and value prefixes, each [tokens × kv heads · head dim] and put before the
    /// layer's keys and values after RoPE, or null when the tuner adds none to that layer.
    /// </summary>
    (Parameter Keys, Parameter Values)? KeyValuePrefix(int layer);

    /// <summary>
    /// How many positions the tuner puts before every sequence (its virtual tokens, or its prefix's length): the real
    /// tokens take positions from here on.
    /// </summary>
    int Tokens { get; }

    /// <summary>
    /// Called before every forward: computes <see cref="VirtualTokens"/> and the prefixes from the trainable
    /// parameters when they are an encoder's output (P-tuning, prefix projection); nothing when they are the
    /// parameters themselves.
    /// </summary>
    void Forward(TunerPass pass, SeededRandom? random) { }

    /// <summary>
    /// Called after a training backward, once the decoder has added dL/d(virtual tokens) and dL/d(prefixes) to their
    /// Grad: carries those into the trainable parameters' gradients when the values are an encoder's output (clearing
    /// the output's Grad for the next pass); nothing when the values are the parameters themselves.
    /// </summary>
    void Backward() { }
}

/// <summary>
/// A trained adapter folder as a model applies it unmerged: its tuner layers by module path and the base tensors it
/// replaces (PEFT's modules_to_save), checked against the model before anything changes.
/// </summary>
public interface IModelAdapter
{
    string Directory { get; }

    /// <summary>What the adapter holds, for start-up reporting (e.g. "r = 8, scaling 2, 6 LoRA modules, 0 replaced tensors").</summary>
    string Describe();

    /// <summary>A fresh tuner layer per wrapped Linear, in module path order, computing on the model's backend.</summary>
    IReadOnlyList<ILinearTuner> CreateTuners(IComputeBackend backend);

    /// <summary>
    /// The model-level tuner of a prompt-learning adapter (virtual tokens or key/value prefixes), or null for the
    /// methods that only wrap Linears.
    /// </summary>
    IModelTuner? CreateModelTuner() => null;

    /// <summary>Tensors that replace the base tensor of the same Hugging Face name.</summary>
    IReadOnlyDictionary<string, (long[] Shape, float[] Data)> ReplacedTensors { get; }

    /// <summary>Why the adapter cannot be folded into the weights (export refuses with it), or null when its tuners merge.</summary>
    string? MergeRefusal => null;

    /// <summary>
    /// Checks the adapter against a base model: <paramref name="linearShape"/> gives the [out, in] weight shape of the
    /// Linear at a module path and <paramref name="tensorShape"/> a tensor's shape by name, both null when the base has
    /// none. Throws <see cref="InvalidDataException"/> naming the first mismatch.
    /// </summary>
    void ValidateAgainst(Func<string, long[]?> linearShape, Func<string, long[]?> tensorShape, string baseName);
}

/// <summary>
/// Reads adapter folders for the model layer, which knows only the tuner contracts: the PEFT layer registers its
/// reader (dispatching on adapter_config.json's peft_type) when the library loads, so Model never depends on Peft.
/// </summary>
public static class AdapterFolders
{
    private static Func<string, IModelAdapter>? s_reader;

    /// <summary>Installs the reader of adapter folders; called once, by the PEFT layer's module initializer.</summary>
    public static void Register(Func<string, IModelAdapter> reader) => s_reader = reader;

    public static IModelAdapter Read(string directory) =>
        (s_reader ?? throw new InvalidOperationException("no adapter folder reader is registered"))(directory);
}
