using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.FineTuning;
using SharpTune.Hparams;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Quantization;
using SharpTune.Tests.Engine;
using SharpTune.Tests.Model;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Training;

/// <summary>
/// q/k/v and gate/up, stored as modules of their own, multiply their shared input as one stacked matrix while their
/// weights are frozen (<see cref="SharedInputLinears"/>): losses, gradients and generated logits equal the products
/// taken one by one (<see cref="DecoderModel.FuseSharedInputs"/> false) to 1e-6 relative, on Qwen2, Qwen3 and Llama,
/// for LoRA and QLoRA (bf16 compute: the loss to 1e-6, the gradients to a tenth of what bf16 itself changes); the stack is the parts' storage, not a copy of it; and a part made
/// trainable or replaced makes its group multiply one by one.
/// </summary>
public sealed class SharedInputFusionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-fusion-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Model(string name, DType dtype = DType.F32) => name switch
    {
        "qwen2" => dtype == DType.F32 ? TrainingFixtures.BaseModel : TestPaths.Fixtures("qwen2-tiny"),
        // hidden 64 so that 4-bit blocks of 64 are rows; head_dim 16 with 4 heads (query width 64), 2 key/value heads.
        "qwen3" => ArchitectureVariantTests.WriteModel(_dir, "qwen3-" + dtype, ArchitectureVariantTests.Config("qwen3", 64, 4, 2, headDim: 16),
            n => !n.Contains("bias"), 64, 16, 4, 2, dtype),
        "llama" => ArchitectureVariantTests.WriteModel(_dir, "llama-" + dtype, ArchitectureVariantTests.Config("llama", 64, 4, 2),
            n => !n.Contains("bias") && !n.Contains("q_norm") && !n.Contains("k_norm"), 64, 16, 4, 2, dtype),
        _ => throw new ArgumentException(name),
    };

    private static QuantizationOptions? Quantization(string name) => name switch
    {
        "none" => null,
        "nf4" => new QuantizationOptions(4),
        "fp4" => new QuantizationOptions(4, FourBitType.Fp4, DoubleQuantization: false),
        "int8" => new QuantizationOptions(8),
        _ => throw new ArgumentException(name),
    };

    /// <summary>A LoRA model on all seven projections whose B matrices are non-zero, so every tuner has gradients and a share of dL/dx.</summary>
    private static ITrainableModel Lora(string folder, QuantizationOptions? quantization, bool bf16, bool checkpointing)
    {
        var model = TrainableModels.Create(folder, new FinetuningArguments { LoraRank = 4, LoraTarget = ["all"] }, checkpointing, new SeededRandom(3), [],
            quantization, bf16);
        var random = new Random(5);
        foreach (var p in model.TrainableParameters.Where(p => p.Name.Contains("lora_B")))
            for (int i = 0; i < p.Length; i++) p.Data[i] = (float)(random.NextDouble() - 0.5) * 0.2f;
        return model;
    }

    private sealed record Outcome(double Loss, float[][] Gradients, string[] Names);

    private static Outcome Step(ITrainableModel model, bool fuse, TrainingBatch batch)
    {
        model.Decoder!.FuseSharedInputs = fuse;
        foreach (var p in model.TrainableParameters) p.ZeroGrad();
        double loss = model.ForwardBackward(batch, 1f, new SeededRandom(0)).Mean;
        return new Outcome(loss, model.TrainableParameters.Select(p => (float[])p.Grad.Clone()).ToArray(), model.TrainableParameters.Select(p => p.Name).ToArray());
    }

    private static void AssertSame(Outcome unfused, Outcome fused)
    {
        Assert.True(double.IsFinite(unfused.Loss) && unfused.Loss != 0, $"degenerate loss {unfused.Loss}");
        Assert.True(Math.Abs(unfused.Loss - fused.Loss) <= 1e-6 * Math.Abs(unfused.Loss), $"loss: unfused {unfused.Loss}, fused {fused.Loss}");
        int nonZero = 0;
        for (int i = 0; i < unfused.Gradients.Length; i++)
        {
            double scale = unfused.Gradients[i].Max(v => Math.Abs(v));
            if (scale > 0) nonZero++;
            TrainingFixtures.AssertClose(unfused.Names[i], unfused.Gradients[i], fused.Gradients[i], 1e-6 * scale, 1e-6);
        }
        // Every parameter has a gradient, so a wrong dL/dx through a stack would show in every layer below it.
        Assert.Equal(unfused.Gradients.Length, nonZero);
    }

    private static void AssertEveryGroupFuses(DecoderModel decoder)
    {
        foreach (var layer in decoder.Layers)
        {
            Assert.Equal(2, layer.SharedInputs.Count);
            Assert.All(layer.SharedInputs, g => Assert.True(g.Fusable, $"layer {layer.Index}'s {string.Join("/", g.Slots)} do not fuse"));
        }
    }

    private static TrainingBatch BatchFor(DecoderModel decoder) =>
        PaddingFreeTests.UnevenBatch(Math.Min(decoder.Config.VocabSize, 512), [70, 23, 41], seed: 9);

    [Theory]
    [InlineData("qwen2", "none", false)]
    [InlineData("qwen2", "none", true)]
    [InlineData("qwen2", "nf4", false)]
    [InlineData("qwen3", "none", false)]
    [InlineData("qwen3", "nf4", true)]
    [InlineData("qwen3", "fp4", false)]
    [InlineData("qwen2", "int8", false)]
    [InlineData("llama", "int8", true)]
    [InlineData("llama", "none", true)]
    [InlineData("llama", "nf4", false)]
    public void Lora_losses_and_gradients_equal_the_products_taken_one_by_one(string architecture, string quantization, bool checkpointing)
    {
        using var model = Lora(Model(architecture), Quantization(quantization), bf16: false, checkpointing);
        AssertEveryGroupFuses(model.Decoder!);
        var batch = BatchFor(model.Decoder!);
        AssertSame(Step(model, fuse: false, batch), Step(model, fuse: true, batch));
    }

    [Bf16GemmTheory]
    [InlineData("qwen2", "none")]
    [InlineData("qwen3", "none")]
    [InlineData("llama", "none")]
    [InlineData("qwen2", "nf4")]
    [InlineData("qwen3", "int8")]
    public void Bf16_compute_rounds_the_shared_input_once_with_the_same_numbers(string architecture, string quantization)
    {
        string folder = Model(architecture, DType.BF16);
        using var model = Lora(folder, Quantization(quantization), bf16: true, checkpointing: false);
        AssertEveryGroupFuses(model.Decoder!);
        // The stacked products run in bf16 too: a bf16 weight's on Bf16ComputeMatrix, a quantised stack on its bf16 kernel.
        Assert.All(model.Decoder!.Layers.SelectMany(l => l.SharedInputs), g =>
        {
            if (quantization == "none") Assert.IsType<Bf16ComputeMatrix>(g.Stacked);
            else Assert.NotNull(Assert.IsAssignableFrom<TiledFrozenMatrix>(g.Stacked).Bf16Kernel);
        });
        var batch = BatchFor(model.Decoder!);
        Outcome unfused = Step(model, fuse: false, batch), fused = Step(model, fuse: true, batch);
        Assert.True(Math.Abs(unfused.Loss - fused.Loss) <= 1e-6 * Math.Abs(unfused.Loss), $"loss: unfused {unfused.Loss}, fused {fused.Loss}");
        // The backward rounds every dy to bf16, so dL/dx summed in another fp32 order (one product over q/k/v instead
        // of three added up) moves some of the roundings below it by an ulp: the gradients are compared with how far
        // bf16 compute itself moves them from fp32 compute, and must differ by less than a tenth of that.
        using var fp32 = Lora(folder, Quantization(quantization), bf16: false, checkpointing: false);
        Outcome reference = Step(fp32, fuse: false, batch);
        static double Distance(Outcome a, Outcome b)
        {
            double difference = 0, norm = 0;
            for (int i = 0; i < a.Gradients.Length; i++)
                for (int j = 0; j < a.Gradients[i].Length; j++)
                {
                    difference += Math.Pow(a.Gradients[i][j] - b.Gradients[i][j], 2);
                    norm += Math.Pow(a.Gradients[i][j], 2);
                }
            return Math.Sqrt(difference / norm);
        }
        double fusion = Distance(unfused, fused), bf16 = Distance(reference, unfused);
        Assert.True(fusion < 0.1 * bf16, $"fused against unfused {fusion:E2}, bf16 against fp32 compute {bf16:E2}");
    }

    [Theory]
    [InlineData("qwen2", DType.F32, "none")]
    [InlineData("qwen2", DType.BF16, "none")]
    [InlineData("qwen3", DType.BF16, "none")]
    [InlineData("llama", DType.F32, "nf4")]
    [InlineData("qwen3", DType.F32, "int8")]
    public void Generated_logits_equal_the_products_taken_one_by_one(string architecture, DType dtype, string quantization)
    {
        // With a LoRA adapter applied unmerged for the fixture model, whose projections it targets.
        string folder = Model(architecture, dtype);
        string[] adapters = folder == TrainingFixtures.BaseModel ? [TrainingFixtures.LoraAdapter] : [];
        using var model = DecoderModel.LoadForGeneration(folder, adapterDirectories: adapters, quantization: Quantization(quantization));
        AssertEveryGroupFuses(model);
        int vocab = model.Config.VocabSize;
        int[][] ids = [[5, 17, 90, 3, 44, 44, 71, 2, 60], [8, 31, 4, 4, 19, 77, 12, 50, 6]];
        int[][] mask = [[1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1, 1]];
        float[] Logits(bool fuse)
        {
            model.FuseSharedInputs = fuse;
            // A prefill of both rows (the GEMM), then one decode step each (the GEMV of up to 4 rows).
            var prefill = model.Evaluate(ids, mask).Logits;
            var cache = model.CreateCache(2, 10);
            var hidden = model.Backend.Allocate(2 * 9, model.Config.HiddenSize);
            model.Forward(ids.SelectMany(r => r).ToArray(), Enumerable.Range(0, 18).Select(i => i % 9).ToArray(),
                mask.SelectMany(r => r.Select(m => (byte)m)).ToArray(), 2, 9, cache, hidden);
            var step = model.Backend.Allocate(2, model.Config.HiddenSize);
            model.Forward([7, 9], [9, 9], [1, 1], 2, 1, cache, step);
            var decoded = model.Backend.Allocate(2, vocab);
            model.Logits(step, 2, decoded);
            return prefill.Concat(model.Backend.ToHost(decoded)).ToArray();
        }
        float[] unfused = Logits(fuse: false), fused = Logits(fuse: true);
        double scale = unfused.Max(v => Math.Abs(v));
        TrainingFixtures.AssertClose("logits", unfused, fused, 1e-6 * scale, 1e-6);
    }

    [Fact]
    public unsafe void The_stack_is_the_parts_storage_and_the_parts_keep_their_stored_values()
    {
        string folder = TestPaths.Fixtures("qwen2-tiny");
        using var decoder = DecoderModel.Load(folder, gradientCheckpointing: false);
        using var checkpoint = SafetensorsCheckpoint.OpenDirectory(folder);
        long stored = checkpoint.Names.Where(n => n.EndsWith("_proj.weight", StringComparison.Ordinal)).Sum(n => (long)checkpoint.Bytes(n).Length);
        Assert.Equal(stored, decoder.Layers.SelectMany(l => l.Linears).Sum(l => l.Weight.StorageBytes));
        foreach (var group in decoder.Layers.SelectMany(l => l.SharedInputs))
        {
            var whole = ((StoredMatrix)group.Stacked).Matrix;
            for (int i = 0; i < group.Parts.Count; i++)
            {
                var part = ((StoredMatrix)group.Parts[i].Weight.Frozen!).Matrix;
                Assert.True(part.Data == (byte*)whole.Data + (long)group.Offsets[i] * whole.Cols * sizeof(ushort),
                    $"{group.Parts[i].ModulePath} is not a row view of its stack");
                Assert.Equal(checkpoint.Bytes(group.Parts[i].Weight.Name).ToArray(), group.Parts[i].Weight.Encode(DType.BF16).ToArray());
            }
        }

        foreach (int bits in new[] { 4, 8 })
        {
            using var quantized = DecoderModel.Load(folder, gradientCheckpointing: false, new QuantizationOptions(bits));
            Assert.Equal(quantized.Layers.SelectMany(l => l.Linears).Sum(l => Quantizer.StorageBytesFor(l.OutFeatures, l.InFeatures, new QuantizationOptions(bits))),
                quantized.Layers.SelectMany(l => l.Linears).Sum(l => l.Weight.StorageBytes));
            foreach (var group in quantized.Layers.SelectMany(l => l.SharedInputs))
                Assert.Equal(group.Parts.Sum(p => p.Weight.StorageBytes), group.Stacked.StorageBytes);
        }
        // int8's parts are row views: their codes are the stack's rows, as quantising each module alone gives them.
        using var int8 = DecoderModel.Load(folder, gradientCheckpointing: false, new QuantizationOptions(8));
        var attention = int8.Layers[0].SharedInput(ProjectionSlot.Value)!;
        var value = (Int8Matrix)attention.Parts[2].Weight.Frozen!;
        var alone = Int8Matrix.Quantize(new WeightMatrix(checkpoint.Pointer(attention.Parts[2].Weight.Name), DType.BF16, value.Rows, value.Cols));
        Assert.Equal(alone.Codes.ToArray(), value.Codes.ToArray());
        Assert.Equal(alone.RowAbsmax.ToArray(), value.RowAbsmax.ToArray());
        Assert.Equal(alone.Codes.ToArray(), ((Int8Matrix)attention.Stacked).Codes.Slice(attention.Offsets[2] * value.Cols, value.Rows * value.Cols).ToArray());
    }

    [Fact]
    public void A_part_made_trainable_or_replaced_multiplies_on_its_own_with_the_same_numbers()
    {
        using var model = Lora(Model("qwen2"), quantization: null, bf16: false, checkpointing: false);
        var decoder = model.Decoder!;
        var batch = BatchFor(decoder);
        // Layer 0's key projection trained in full, layer 1's up projection replaced (as a modules_to_save tensor is).
        var trained = decoder.Layers[0].Projection(ProjectionSlot.Key).Weight.MakeTrainable();
        var up = decoder.Layers[1].Projection(ProjectionSlot.Up).Weight;
        var replacement = new float[up.Length];
        up.Frozen!.ReadRows(0, up.Shape[0], replacement);
        for (int i = 0; i < replacement.Length; i++) replacement[i] *= 1.5f;
        up.Replace(replacement);
        Assert.False(decoder.Layers[0].SharedInput(ProjectionSlot.Key)!.Fusable);
        Assert.True(decoder.Layers[0].SharedInput(ProjectionSlot.Gate)!.Fusable);
        Assert.False(decoder.Layers[1].SharedInput(ProjectionSlot.Gate)!.Fusable);
        Assert.True(decoder.Layers[1].SharedInput(ProjectionSlot.Query)!.Fusable);

        Outcome Run(bool fuse)
        {
            decoder.FuseSharedInputs = fuse;
            foreach (var p in model.TrainableParameters.Append(trained)) p.ZeroGrad();
            double loss = model.ForwardBackward(batch, 1f, new SeededRandom(0)).Mean;
            var parameters = model.TrainableParameters.Append(trained).ToList();
            return new Outcome(loss, parameters.Select(p => (float[])p.Grad.Clone()).ToArray(), parameters.Select(p => p.Name).ToArray());
        }
        AssertSame(Run(fuse: false), Run(fuse: true));
    }
}
