using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Training.Model;

/// <summary>
/// A decoder Linear (y = x·Wᵀ + b) with the tuner layers applied to it (<see cref="ILinearTuner"/>, in order);
/// gradients only for what is trainable. A frozen weight kept compact (<see cref="ModelTensor.Frozen"/>) is
/// multiplied through its storage in both directions.
/// </summary>
public sealed class TrainableLinear(string modulePath, int inFeatures, int outFeatures, IComputeBackend backend, ModelTensor weight, ModelTensor? bias)
{
    /// <summary>The module's name in the base model, e.g. model.layers.0.self_attn.q_proj.</summary>
    public string ModulePath { get; } = modulePath;
    public int InFeatures { get; } = inFeatures;
    public int OutFeatures { get; } = outFeatures;
    public ModelTensor Weight { get; } = weight;
    public ModelTensor? Bias { get; } = bias;
    public List<ILinearTuner> Tuners { get; } = [];

    /// <summary>False while the decoder's tuners are disabled (<see cref="DecoderModel.DisableTuners"/>): the base Linear alone.</summary>
    public bool TunersEnabled { get; set; } = true;

    /// <summary>The last part of the module path (q_proj, down_proj, ...), what PEFT's target_modules name.</summary>
    public string ModuleName => ModulePath[(ModulePath.LastIndexOf('.') + 1)..];

    /// <summary>The base weight and bias as tuners that depend on them read them (<see cref="ILinearTuner.AttachTo"/>).</summary>
    public ILinearBase Base => new BaseLinear(Weight, Bias, backend);

    /// <summary>Puts a tuner on this Linear after those already there, letting it see the base and refuse to follow them.</summary>
    public void AddTuner(ILinearTuner tuner)
    {
        tuner.AttachTo(Base, Tuners);
        Tuners.Add(tuner);
    }

    public bool HasTrainable => Weight.IsTrainable || Bias?.IsTrainable == true || Tuners.Count > 0;

    public void Forward(Tensor x, int rows, Tensor y, TunerPass pass, SeededRandom? random)
    {
        if (Tuners.Count > 0 && TunersEnabled) x = TunedInput(x, rows, pass);
        if (Weight.Frozen is { } frozen)
        {
            using (StepProfile.Measure(StepSection.ProjectionsForward)) backend.Linear(x, rows, frozen, bias: null, y);
            ForwardFromFrozenProduct(x, rows, y, pass, random);
            return;
        }
        using (StepProfile.Measure(StepSection.ProjectionsForward))
            backend.Linear(x, rows, Weight.Data, InFeatures, OutFeatures, Bias?.Data, y);
        ForwardTuners(x, rows, y, pass, random);
    }

    /// <summary>
    /// The rest of <see cref="Forward"/> once y holds x·Wᵀ of the frozen weight (x as the tuners' input hooks left it;
    /// <see cref="SharedInputLinears"/> computes that product for several Linears at once): the bias, then the tuners.
    /// </summary>
    internal void ForwardFromFrozenProduct(Tensor x, int rows, Tensor y, TunerPass pass, SeededRandom? random)
    {
        if (Bias is not null)
            using (StepProfile.Measure(StepSection.ProjectionsForward)) backend.AddBias(y, rows, Bias.Data);
        ForwardTuners(x, rows, y, pass, random);
    }

    private void ForwardTuners(Tensor x, int rows, Tensor y, TunerPass pass, SeededRandom? random)
    {
        if (Tuners.Count == 0 || !TunersEnabled) return;
        using (StepProfile.Measure(StepSection.LoraForward))
            foreach (var tuner in Tuners) tuner.Forward(x, rows, y, pass, random);
    }

    /// <summary>
    /// The generation product: the weight multiplied where the backend multiplies a stored matrix (a GEMV for up to
    /// 4 rows, the matrix streamed from huge pages when it was copied there), then the tuner layers' evaluation pass.
    /// </summary>
    public void Generate(Tensor x, int rows, Tensor y) => Generate(backend, Weight, Bias, TunersEnabled ? Tuners : [], x, rows, y);

    /// <summary>
    /// The generation product of a Linear with tuner layers, for a layer's Linear and for lm_head: the input through
    /// the input-side hooks of the tuners that have one, the base product (with bias), then each tuner layer's
    /// evaluation pass on that input, in the order applied.
    /// </summary>
    public static void Generate(IComputeBackend backend, ModelTensor weight, ModelTensor? bias, IReadOnlyList<ILinearTuner> tuners,
        Tensor x, int rows, Tensor y)
    {
        foreach (var tuner in tuners)
            if (tuner.TransformsInput) x = tuner.TransformInput(x, rows, TunerPass.Evaluate);
        Product(backend, weight, bias, x, rows, y);
        foreach (var tuner in tuners) tuner.Forward(x, rows, y, TunerPass.Evaluate, null);
    }

    /// <summary>
    /// The rest of <see cref="Generate(Tensor, int, Tensor)"/> once y holds x·Wᵀ of the frozen weight, for a Linear
    /// whose tuners leave its input as it is (<see cref="SharedInputLinears"/>): the bias, then the tuners' evaluation pass.
    /// </summary>
    internal void GenerateFromFrozenProduct(Tensor x, int rows, Tensor y)
    {
        if (Bias is not null) backend.AddBias(y, rows, Bias.Data);
        if (TunersEnabled)
            foreach (var tuner in Tuners) tuner.Forward(x, rows, y, TunerPass.Evaluate, null);
    }

    /// <summary>y = x·weightᵀ (+ bias) as generation computes it, for a layer's Linear and for lm_head.</summary>
    public static void Product(IComputeBackend backend, ModelTensor weight, ModelTensor? bias, Tensor x, int rows, Tensor y)
    {
        switch (weight.Frozen)
        {
            case StoredMatrix stored: backend.Linear(x, rows, stored.Matrix, bias?.Data, y); break;
            case { } frozen: backend.Linear(x, rows, frozen, bias?.Data, y); break;
            default: backend.Linear(x, rows, weight.Data, x.RowWidth, y.RowWidth, bias?.Data, y); break;
        }
    }

    /// <summary>Parameter gradients from dy; dL/dx written to dx (added when accumulate) unless dx is null.</summary>
    public void Backward(Tensor x, Tensor dy, int rows, Tensor? dx, bool accumulate)
    {
        if (!Tuners.Exists(t => t.TransformsInput))
        {
            BackwardFromTunedInput(x, dy, rows, dx, accumulate);
            return;
        }
        // The input-side hooks' inputs again, as gradient checkpointing recomputes them (dropout masks reused).
        var hooks = Tuners.Where(t => t.TransformsInput).ToList();
        var hookInputs = new Tensor[hooks.Count];
        for (int i = 0; i < hooks.Count; i++)
        {
            hookInputs[i] = x;
            x = hooks[i].TransformInput(x, rows, TunerPass.Recompute);
        }
        // The hooks need dL/d(their output) for their own gradients, so it is computed even when dx is not wanted.
        var dInput = backend.Allocate(rows, InFeatures);
        BackwardFromTunedInput(x, dy, rows, dInput, accumulate: false);
        for (int i = hooks.Count - 1; i >= 0; i--)
        {
            var dHookInput = backend.Allocate(rows, InFeatures);
            hooks[i].TransformInputBackward(hookInputs[i], dInput, rows, dHookInput);
            dInput = dHookInput;
        }
        if (dx is null) return;
        if (accumulate) backend.Add(dx, dInput, rows * InFeatures);
        else backend.CopyRows(dInput, 0, dx, 0, rows);
    }

    /// <summary>x through the input-side hooks of the tuners that have one, in order (x itself when none has).</summary>
    private Tensor TunedInput(Tensor x, int rows, TunerPass pass)
    {
        foreach (var tuner in Tuners)
            if (tuner.TransformsInput) x = tuner.TransformInput(x, rows, pass);
        return x;
    }

    /// <summary><see cref="Backward"/> of the base and the output-side hooks, for x the input the base saw.</summary>
    private void BackwardFromTunedInput(Tensor x, Tensor dy, int rows, Tensor? dx, bool accumulate)
    {
        // Each tuner's dy is dL/d(its output): a rescaling tuner (IA3) changes it for the tuners before it and the base.
        var tunerDy = OutputSideGradients(dy, rows, out var baseDy);
        if (Weight.Frozen is { } frozen)
        {
            if (dx is not null)
                using (StepProfile.Measure(StepSection.ProjectionsBackward)) backend.LinearInputGradient(baseDy, rows, frozen, dx, accumulate);
            BackwardFromFrozenProduct(x, dy, tunerDy, baseDy, rows, dx);
            return;
        }
        if (Weight.IsTrainable || Bias?.IsTrainable == true || dx is not null)
            using (StepProfile.Measure(StepSection.ProjectionsBackward))
                backend.LinearBackward(x, baseDy, rows, Weight.Data, InFeatures, OutFeatures, Weight.Grad, Bias?.Grad, dx, accumulate);
        BackwardTuners(x, dy, tunerDy, rows, dx);
    }

    /// <summary>
    /// The rest of the backward once dL/dx through the frozen weight is in dx (<see cref="SharedInputLinears"/>
    /// computes it for several Linears at once): the bias gradient from the base product's dy, then the tuners'.
    /// </summary>
    internal void BackwardFromFrozenProduct(Tensor x, Tensor dy, Tensor[]? tunerDy, Tensor baseDy, int rows, Tensor? dx)
    {
        if (Bias?.Grad is { } biasGrad)
            using (StepProfile.Measure(StepSection.ProjectionsBackward)) backend.ColumnSums(baseDy, rows, biasGrad);
        BackwardTuners(x, dy, tunerDy, rows, dx);
    }

    private void BackwardTuners(Tensor x, Tensor dy, Tensor[]? tunerDy, int rows, Tensor? dx)
    {
        if (Tuners.Count == 0) return;
        using (StepProfile.Measure(StepSection.LoraBackward))
            for (int i = 0; i < Tuners.Count; i++) Tuners[i].Backward(x, tunerDy?[i] ?? dy, rows, dx);
    }

    /// <summary>
    /// dL/d(each tuner's output), from the last tuner to the first, and the base product's dy; null (every one dy) when
    /// no tuner rescales its output, so additive tuners (LoRA) cost no copy.
    /// </summary>
    internal Tensor[]? OutputSideGradients(Tensor dy, int rows, out Tensor baseDy)
    {
        baseDy = dy;
        if (!Tuners.Exists(t => t.TransformsOutput)) return null;
        var tunerDy = new Tensor[Tuners.Count];
        for (int i = Tuners.Count - 1; i >= 0; i--)
        {
            tunerDy[i] = baseDy;
            if (!Tuners[i].TransformsOutput) continue;
            var before = backend.Allocate(rows, OutFeatures);
            Tuners[i].OutputGradient(baseDy, rows, before);
            baseDy = before;
        }
        return tunerDy;
    }
}
