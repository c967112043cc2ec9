using SharpTune.Engine;
using SharpTune.Hparams;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Quantization;
using SharpTune.Tests.IO;
using SharpTune.Training;
using SharpTune.FineTuning.Memory;
using SharpTune.Training.Model;
using SharpTune.Training.Optim;

namespace SharpTune.Tests.Training;

/// <summary>
/// The memory estimate's arithmetic on the qwen2-small-vocab fixture (F32, untied, hidden 48, intermediate 96,
/// 3 layers, 4 heads and 4 kv heads of 12, vocabulary 512, q/k/v biases), against numbers worked out by hand from
/// the shapes; and the sizes it borrows from the optimizers and quantisers against the objects they build.
/// </summary>
public sealed class MemoryEstimateTests
{
    private static readonly string ModelDir = TestPaths.Fixtures("qwen2-small-vocab");

    // Element counts by hand: embed_tokens and lm_head 512·48 = 24576 each; per layer q/k/v/o 48·48 = 2304 each,
    // gate/up 96·48 and down 48·96 = 4608 each (23040 a layer, 69120 in all); vectors per layer two norms of 48 and
    // three biases of 48 (240), plus the final norm: 768. All 119040 values are F32: 476160 bytes.
    private const long CheckpointBytes = 476_160;
    private const long VectorBytes = 4 * 768;

    private static long Row(MemoryEstimate e, string prefix) => e.Components.Single(c => c.Name.StartsWith(prefix, StringComparison.Ordinal)).Bytes;

    /// <summary>Packed op(A) floats of an m×k product: m rounded up to the micro-kernel's rows.</summary>
    private static long Packed(int m, int k)
    {
        int mr = MicroKernels.Shape(ManagedGemmKernel.BestIsa).Mr;
        return (long)((m + mr - 1) / mr) * mr * k;
    }

    private static TrainingMemorySetup Setup(FinetuningArguments args, bool checkpointing = true, string optim = "adamw_torch",
        QuantizationOptions? quantization = null) =>
        new(args, [], quantization, checkpointing, CutoffLen: 8, BatchSize: 2, GradientAccumulationSteps: 1, optim);

    /// <summary>
    /// ChatGLM (the chatglm3-small fixture: F32, hidden 64, 2 layers, 4 heads of 16 in 2 groups, ffn 112, vocabulary
    /// 320, q/k/v bias) under full fine-tuning: its norms and biases are named under transformer.encoder, its fused
    /// Linears' scratch is a step buffer, and the unused inv_freq is neither mapped nor trained.
    /// </summary>
    [Fact]
    public void ChatGlm_full_estimate_counts_its_norms_and_fused_scratch()
    {
        var e = MemoryEstimator.ForModelFolder(TestPaths.Fixtures("chatglm3-small"), Setup(new FinetuningArguments { FinetuningType = FinetuningType.Full }));

        // Matrices: word_embeddings and output_layer 320·64 = 20480 each; per layer query_key_value 128·64 = 8192,
        // dense 64·64 = 4096, dense_h_to_4h 224·64 = 14336, dense_4h_to_h 64·112 = 7168 (33792). Vectors: per layer two
        // norms of 64 and the qkv bias of 128 (256), and the final norm: 576. 109120 values in all.
        const long values = 2 * 20480 + 2 * 33792 + 576;
        Assert.Equal(4 * values, Row(e, "weights, memory-mapped"));
        Assert.Equal(4 * 576, Row(e, "norms and biases"));
        Assert.Equal(4 * values, Row(e, "gradients"));
        // Per row under checkpointing: 3 layer inputs of 64; one layer's activations (norm1 64, rms 1,
        // q 64, k/v 2·32, logsumexp 4, attention 64, middle 64, norm2 64, rms 1, gate/up/act 3·112 = 726); the step
        // buffers (final normed 64, rms 1, projected 64, the fused scratch 128 + 224, dResidual, dNormed, dAttention,
        // dQuery 4·64, dKey and dValue 2·32, per head 2·64, dGate/dUp/dActivation 3·112 = 1265): 2183 over 16 rows.
        Assert.Equal(4 * 16 * 2183, Row(e, "activations"));
        Assert.Equal(4 * new[] { Packed(14, 320), Packed(16, 224), Packed(224, 16), Packed(320, 14) }.Max(), Row(e, "GEMM packing"));
    }

    [Fact]
    public void Lora_estimate_matches_the_hand_computed_table()
    {
        var args = new FinetuningArguments { FinetuningType = FinetuningType.Lora, LoraRank = 4, LoraDropout = 0.1 };
        var e = MemoryEstimator.ForModelFolder(ModelDir, Setup(args));

        // LoRA r4 on 21 projections: r·(in + out) = 384 for q/k/v/o, 576 for gate/up/down: 3264 a layer, 9792 values.
        const long parameters = 9792;
        // Rows 2 × 8 = 16, labels on 2 × 7 = 14. Per row under checkpointing: 4 layer inputs of 48, one
        // layer's activations (norm1 48, rms 1, q/k/v 3·48, logsumexp 4, attention 48, middle 48, norm2 48, rms 1,
        // gate/up/act 3·96 = 630) and the gradient buffers (final normed 48, rms 1, projected, dResidual, dNormed,
        // dAttention, dQuery, dKey, dValue, dKey and dValue per head: 10·48, dGate/dUp/dActivation 3·96 = 769, the
        // stacked q/k/v and gate/up products' scratch 3·48 + 2·96 = 336): 1927.
        const long activations = 4 * 16 * 1927;
        const long activationsWithout = 4 * 16 * (1927 + 2 * 630);
        // Loss chunk: max(256, 16M / 512) rows capped at the 14 label rows: hidden, dHidden 14·48 each, logits 14·512.
        const long lossChunk = 4 * (2 * 14 * 48 + 14 * 512);
        // Per adapter: x·Aᵀ and its gradient (2·16·4), with dropout three 16 × in buffers, and Bᵀ (4 × out); per layer
        // the ins add up to 6·48 + 96 = 384 and the outs to 4·48 + 2·96 + 48 = 432.
        const long loraCaches = 4 * 3 * (7 * 128 + 3 * 16 * 384 + 4 * 432);

        Assert.Equal(MemoryEstimator.RuntimeBytes, Row(e, "runtime"));
        Assert.Equal(CheckpointBytes, Row(e, "weights, memory-mapped"));
        Assert.Equal(VectorBytes, Row(e, "norms and biases"));
        Assert.DoesNotContain(e.Components, c => c.Name.StartsWith("trained weights", StringComparison.Ordinal));
        Assert.Equal(4 * parameters, Row(e, "trainable parameters"));
        Assert.Equal(4 * parameters, Row(e, "gradients"));
        Assert.Equal(8 * parameters, Row(e, "optimizer state"));
        Assert.Equal(activations, Row(e, "activations"));
        Assert.Contains($"off: {MemoryEstimator.FormatBytes(activationsWithout)}", e.Components.Single(c => c.Name.StartsWith("activations", StringComparison.Ordinal)).Note);
        Assert.Equal(lossChunk, Row(e, "loss chunk"));
        // The largest product: dx through lm_head, 14 chunk rows × 512, above the layers' 16 × 96 and LoRA's 96 × 16.
        Assert.Equal(4 * Math.Max(Packed(14, 512), Math.Max(Packed(16, 96), Packed(96, 16))), Row(e, "GEMM packing"));
        Assert.Equal(loraCaches, Row(e, "LoRA adapter caches"));
        // The adapter file's fp32 copy and trainable_parameters.safetensors'.
        Assert.Equal(8 * parameters, Row(e, "checkpoint writing"));
        Assert.Equal(e.Components.Sum(c => c.Bytes), e.TotalBytes);

        var without = MemoryEstimator.ForModelFolder(ModelDir, Setup(args, checkpointing: false));
        Assert.Equal(activationsWithout, Row(without, "activations"));
        Assert.Equal(e.TotalBytes - activations + activationsWithout, without.TotalBytes);
    }

    [Fact]
    public void Dora_estimate_adds_the_magnitudes_and_the_output_sized_buffers()
    {
        var args = new FinetuningArguments { FinetuningType = FinetuningType.Lora, LoraRank = 4, UseDora = true };
        var e = MemoryEstimator.ForModelFolder(ModelDir, Setup(args));

        // The LoRA table's 9792 values plus a magnitude per output: 4·48 + 2·96 + 48 = 432 a layer, 1296 in all.
        const long parameters = 9792 + 1296;
        // LoRA without dropout: x·Aᵀ and its gradient (2·16·4) per adapter and Bᵀ (4 × out): 7·128 + 4·432 a layer.
        // DoRA per adapter: s·B·A·x and the magnitude gradient's input (2·16·out), norm and scale (2·out), and the A
        // and B the norm was taken at (4·(in + out)): 32·432 + 2·432 + 4·(384 + 432) a layer.
        const long caches = 4 * 3 * (7 * 128 + 4 * 432 + 32 * 432 + 2 * 432 + 4 * (384 + 432));

        Assert.Equal(4 * parameters, Row(e, "trainable parameters"));
        Assert.Equal(4 * parameters, Row(e, "gradients"));
        Assert.Equal(8 * parameters, Row(e, "optimizer state"));
        Assert.Equal(caches, Row(e, "LoRA adapter caches"));
        Assert.Equal(8 * parameters, Row(e, "checkpoint writing"));
    }

    [Fact]
    public void Full_estimate_with_8bit_adamw_matches_the_hand_computed_table()
    {
        var e = MemoryEstimator.ForModelFolder(ModelDir, Setup(new FinetuningArguments { FinetuningType = FinetuningType.Full }, optim: "adamw_8bit"));

        const long parameters = 119_040;
        // 8-bit moments (a code per value and an fp32 absmax per 256, for each of m and v) for the tensors of at least
        // 4096 values: embed_tokens and lm_head (24576, 96 blocks) and the 9 gate/up/down (4608, 18 blocks); fp32
        // moments for the 12 q/k/v/o (2304) and the 768 vector values.
        const long optimizer = 2 * (2 * 24576 + 8 * 96) + 9 * (2 * 4608 + 8 * 18) + 8 * (12 * 2304 + 768);

        Assert.Equal(CheckpointBytes, Row(e, "weights, memory-mapped"));
        Assert.Equal(CheckpointBytes - VectorBytes, Row(e, "trained weights"));
        Assert.Equal(0, Row(e, "trainable parameters"));
        Assert.Equal(4 * parameters, Row(e, "gradients"));
        Assert.Equal(optimizer, Row(e, "optimizer state"));
        // lm_head is trained: its weight gradient (512 × 14 chunk rows) joins the candidates for the packing buffer.
        Assert.Equal(4 * new[] { Packed(14, 512), Packed(16, 96), Packed(96, 16), Packed(512, 14) }.Max(), Row(e, "GEMM packing"));
        // Saving: every tensor encoded (F32: one 4-byte copy) and the fp32 trainable parameters.
        Assert.Equal(CheckpointBytes + 4 * parameters, Row(e, "checkpoint writing"));
        Assert.DoesNotContain(e.Components, c => c.Name.StartsWith("LoRA", StringComparison.Ordinal));
    }

    [Fact]
    public void Qlora_counts_the_quantised_projections_instead_of_their_mapped_pages()
    {
        var args = new FinetuningArguments { FinetuningType = FinetuningType.Lora, LoraRank = 4 };
        var e = MemoryEstimator.ForModelFolder(ModelDir, Setup(args, quantization: new QuantizationOptions(4)));
        // NF4 with double quantisation: 4608 values → 2304 bytes of codes, 72 blocks → 72 codes, 1 scale, the offset
        // (2304 + 72 + 4 + 4); 2304 values → 1152 + 36 + 4 + 4.
        const long quantized = 3 * (3 * (2304 + 72 + 8) + 4 * (1152 + 36 + 8));
        Assert.Equal(quantized, Row(e, "weights, quantised"));
        Assert.Equal(CheckpointBytes - 4 * 69120, Row(e, "weights, memory-mapped"));
        var refused = Assert.Throws<ArgumentException>(() => MemoryEstimator.ForModelFolder(ModelDir,
            Setup(new FinetuningArguments { FinetuningType = FinetuningType.Full }, quantization: new QuantizationOptions(4))));
        Assert.Contains("finetuning_type full cannot use quantization_bit", refused.Message);
    }

    /// <summary>
    /// The case that used to end in a bare OutOfMemoryException: full fine-tuning of the 1.8B shape in 16 GB. The
    /// model folder holds the preset's config.json and a safetensors file whose header lists the preset's tensors and
    /// whose data is a sparse hole, since the estimate reads nothing past the header.
    /// </summary>
    [Fact]
    public void Full_fine_tuning_of_the_1_8b_shape_does_not_fit_in_16_GB_and_lora_does()
    {
        using var dir = new TempDir();
        string model = HeaderOnlyModel(dir.Path, ModelPreset.Get("qwen1.5-1.8b-shape"));
        var sixteen = new SystemMemory.Available(16_000_000_000, "16 GB for this test");
        SftConfig Config(string method) => SftConfig.Load(WriteConfig(dir.Path, model, method), [], ConfigUse.Train);

        var full = MemoryCheck.Run(Config("full"), sixteen);
        Assert.False(full.Fits);
        // 1.84 G parameters: fp32 weights, gradients and AdamW moments are 16 bytes each, beside the 3.7 GB mapped bf16 checkpoint.
        Assert.True(full.Estimate.TotalBytes > 16 * 1_836_828_672L, MemoryEstimator.FormatBytes(full.Estimate.TotalBytes));
        string table = full.Format();
        Assert.Contains("verdict: does not fit", table);
        var lora = Assert.Single(full.OptionsThatFit, o => o.Overrides == "finetuning_type=lora");
        Assert.True(lora.Estimate.TotalBytes < sixteen.Bytes);
        Assert.Contains(full.OptionsThatFit, o => o.Overrides == "finetuning_type=lora quantization_bit=4");
        Assert.Contains($"  finetuning_type=lora: {MemoryEstimator.FormatBytes(lora.Estimate.TotalBytes)}", table);

        var loraCheck = MemoryCheck.Run(Config("lora"), sixteen);
        Assert.True(loraCheck.Fits);
        Assert.Equal(lora.Estimate.TotalBytes, loraCheck.Estimate.TotalBytes);
        Assert.Contains("verdict: fits", loraCheck.Format());
    }

    private static string WriteConfig(string dir, string model, string method)
    {
        string path = Path.Combine(dir, method + ".yaml");
        File.WriteAllText(path, $"""
            model_name_or_path: {System.Text.Json.JsonSerializer.Serialize(model)}
            stage: sft
            do_train: true
            finetuning_type: {method}
            dataset: identity
            dataset_dir: {System.Text.Json.JsonSerializer.Serialize(Path.Combine(TestPaths.RepoRoot, "data"))}
            template: qwen
            cutoff_len: 1024
            per_device_train_batch_size: 1
            output_dir: {System.Text.Json.JsonSerializer.Serialize(Path.Combine(dir, "out"))}
            """);
        return path;
    }

    /// <summary>config.json and a bf16 model.safetensors of a preset's tensors (as init-model names them), the data a sparse hole.</summary>
    private static string HeaderOnlyModel(string dir, ModelPreset p)
    {
        string model = Path.Combine(dir, p.Name);
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "config.json"), $$"""
            {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu", "hidden_size": {{p.HiddenSize}},
             "intermediate_size": {{p.IntermediateSize}}, "num_hidden_layers": {{p.NumLayers}}, "num_attention_heads": {{p.NumHeads}},
             "num_key_value_heads": {{p.NumKvHeads}}, "vocab_size": {{p.VocabSize}}, "tie_word_embeddings": {{(p.TieWordEmbeddings ? "true" : "false")}},
             "rms_norm_eps": 1e-6, "rope_theta": {{p.RopeTheta}}, "max_position_embeddings": {{p.MaxPositionEmbeddings}},
             "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "bfloat16", "use_sliding_window": false}
            """);
        int h = p.HiddenSize, kv = p.HiddenSize / p.NumHeads * p.NumKvHeads;
        var tensors = new List<(string Name, long[] Shape)> { ("model.embed_tokens.weight", [p.VocabSize, h]), ("model.norm.weight", [h]) };
        if (!p.TieWordEmbeddings) tensors.Add(("lm_head.weight", [p.VocabSize, h]));
        for (int i = 0; i < p.NumLayers; i++)
        {
            string l = $"model.layers.{i}.";
            tensors.AddRange([
                (l + "input_layernorm.weight", [h]), (l + "post_attention_layernorm.weight", [h]),
                (l + "self_attn.q_proj.weight", [h, h]), (l + "self_attn.q_proj.bias", [h]),
                (l + "self_attn.k_proj.weight", [kv, h]), (l + "self_attn.k_proj.bias", [kv]),
                (l + "self_attn.v_proj.weight", [kv, h]), (l + "self_attn.v_proj.bias", [kv]),
                (l + "self_attn.o_proj.weight", [h, h]),
                (l + "mlp.gate_proj.weight", [p.IntermediateSize, h]), (l + "mlp.up_proj.weight", [p.IntermediateSize, h]),
                (l + "mlp.down_proj.weight", [h, p.IntermediateSize]),
            ]);
        }
        var header = new System.Text.Json.Nodes.JsonObject();
        long offset = 0;
        foreach (var (name, shape) in tensors)
        {
            long bytes = 2 * shape.Aggregate(1L, (a, b) => a * b);
            header[name] = new System.Text.Json.Nodes.JsonObject
            {
                ["dtype"] = "BF16",
                ["shape"] = new System.Text.Json.Nodes.JsonArray(shape.Select(d => (System.Text.Json.Nodes.JsonNode)d).ToArray()),
                ["data_offsets"] = new System.Text.Json.Nodes.JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        byte[] json = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        using var file = File.Create(Path.Combine(model, "model.safetensors"));
        file.Write(BitConverter.GetBytes((long)json.Length));
        file.Write(json);
        file.SetLength(8 + json.Length + offset);
        return model;
    }

    [Fact]
    public void A_tensor_of_the_wrong_rank_is_named_with_the_folder()
    {
        var config = ModelConfig.Load(Path.Combine(ModelDir, "config.json"));
        List<TensorInfo> tensors;
        using (var checkpoint = SafetensorsCheckpoint.OpenDirectory(ModelDir))
            tensors = checkpoint.Names.Select(checkpoint.Get)
                .Select(t => t.Name == "model.layers.1.mlp.up_proj.weight" ? t with { Shape = [4608] } : t).ToList();
        var e = Assert.Throws<InvalidDataException>(() => MemoryEstimator.Estimate(config, tensors,
            Setup(new FinetuningArguments { FinetuningType = FinetuningType.Lora }), ModelDir));
        Assert.Equal($"{ModelDir}: tensor 'model.layers.1.mlp.up_proj.weight' has shape [4608]; a matrix was expected", e.Message);
    }

    [Fact]
    public void A_larger_eval_batch_sizes_the_step_buffers()
    {
        var args = new FinetuningArguments { FinetuningType = FinetuningType.Lora, LoraRank = 4 };
        var train = MemoryEstimator.ForModelFolder(ModelDir, Setup(args));
        var withEval = MemoryEstimator.ForModelFolder(ModelDir, Setup(args) with { EvalBatchSize = 4 });
        // Per row under checkpointing: 1927 values (see above); 4 × 8 rows instead of 2 × 8.
        Assert.Equal(4 * 32 * 1927, Row(withEval, "activations, 4 × 8 tokens"));
        Assert.True(withEval.TotalBytes > train.TotalBytes);
    }

    [Theory]
    [InlineData(4, true)]
    [InlineData(4, false)]
    [InlineData(8, true)]
    public void Quantised_size_formula_is_what_quantising_keeps(int bits, bool doubleQuantization)
    {
        var random = new Random(3);
        foreach (var (rows, cols) in new[] { (7, 13), (300, 97), (96, 48) })
        {
            var values = Enumerable.Range(0, rows * cols).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
            unsafe
            {
                fixed (float* p = values)
                {
                    var options = new QuantizationOptions(bits, FourBitType.Nf4, doubleQuantization);
                    var quantized = Quantizer.Quantize(new WeightMatrix(p, DType.F32, rows, cols), options);
                    Assert.Equal(quantized.StorageBytes, Quantizer.StorageBytesFor(rows, cols, options));
                }
            }
        }
    }

    [Theory]
    [InlineData("adamw_torch")]
    [InlineData("adamw_8bit")]
    [InlineData("paged_adamw_8bit")]
    public void Optimizer_state_formula_is_what_the_optimizer_allocates(string optim)
    {
        var parameters = new[] { 1, 255, 4095, 4096, 5000, 70_000 }
            .Select((n, i) => new Parameter($"p{i}", [n], new float[n])).ToList();
        using var optimizer = OptimizerNames.Create(optim, parameters, new TrainingArguments());
        Assert.Equal(optimizer.StateBytes, OptimizerNames.StateBytes(optim, parameters.Select(p => p.Length)));
    }

    [Fact]
    public void Available_memory_is_mem_available_capped_by_the_cgroup_limit()
    {
        const string meminfo = "MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n";
        Assert.Equal(new SystemMemory.Available(8_000_000L * 1024, "MemAvailable"), SystemMemory.FromFiles(meminfo, null, null));
        Assert.Equal(new SystemMemory.Available(8_000_000L * 1024, "MemAvailable"), SystemMemory.FromFiles(meminfo, "max\n", "123\n"));
        // 4 GiB limit with 1 GiB already charged to the cgroup: 3 GiB left, below MemAvailable.
        Assert.Equal(new SystemMemory.Available(3L << 30, "cgroup memory.max − memory.current"),
            SystemMemory.FromFiles(meminfo, $"{4L << 30}\n", $"{1L << 30}\n"));
        Assert.Equal("MemAvailable, under the cgroup limit", SystemMemory.FromFiles(meminfo, $"{64L << 30}\n", "0\n")!.Source);
        Assert.Null(SystemMemory.FromFiles(null, null, null));
    }

    /// <summary>
    /// Stage dpo holds each pair's two sequences in the step's buffers, and full tuning adds a frozen copy of the
    /// starting weights as the reference (its mapped weights, its vectors and its gradient-checkpointing buffers);
    /// LoRA's reference is the policy itself.
    /// </summary>
    [Fact]
    public void Dpo_doubles_the_rows_and_counts_the_reference_copy_of_full_tuning()
    {
        var sft = MemoryEstimator.ForModelFolder(ModelDir, Setup(new FinetuningArguments { FinetuningType = FinetuningType.Full }));
        var full = new FinetuningArguments { FinetuningType = FinetuningType.Full, Stage = "dpo" };
        var dpo = MemoryEstimator.ForModelFolder(ModelDir, Setup(full) with { SequencesPerExample = 2, Reference = PreferenceReference.StartingWeightsCopy });

        var config = ModelConfig.Load(Path.Combine(ModelDir, "config.json"));
        Assert.Equal(DecoderModel.ActivationBytes(config, 2 * 2 * 8, true), Row(dpo, "activations, 4 × 8 tokens"));
        Assert.Equal(CheckpointBytes + VectorBytes + DecoderModel.ActivationBytes(config, 2 * 2 * 8, true), Row(dpo, "reference model"));
        Assert.DoesNotContain(sft.Components, c => c.Name == "reference model");

        var lora = MemoryEstimator.ForModelFolder(ModelDir, Setup(new FinetuningArguments { Stage = "dpo" }) with { SequencesPerExample = 2, Reference = PreferenceReference.TunersDisabled });
        Assert.DoesNotContain(lora.Components, c => c.Name == "reference model");
    }
}
