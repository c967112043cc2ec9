using System.Text.Json;
using SharpTune.Engine;
using SharpTune.Hparams;
using SharpTune.Peft;
using SharpTune.Peft.Lora;
using SharpTune.Tests.Training;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Peft;

/// <summary>PiSSA (pissa_init, pissa_iter, pissa_convert) and OLoRA (init_lora_weights: olora): adapters taken from the base weight.</summary>
public sealed class LoraInitializationTests : IDisposable
{
    private readonly string _dir = LoraTestFolders.NewTempDir("lora-init");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static LoraFineTuning Create(FinetuningArguments args) =>
        LoraFineTuning.CreateNew(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), args, new SeededRandom(1));

    private static float[] Weight(LoraFineTuning model, string modulePath)
    {
        var linear = model.Decoder.Linears.Single(l => l.ModulePath == modulePath);
        var weight = new float[linear.OutFeatures * linear.InFeatures];
        linear.Base.ReadWeightRows(0, linear.OutFeatures, weight);
        return weight;
    }

    /// <summary>s·B·A as a dense [out × in] matrix, in double.</summary>
    private static double[] Product(float[] b, float[] a, int outFeatures, int inFeatures, int rank, double scaling)
    {
        var product = new double[outFeatures * inFeatures];
        for (int o = 0; o < outFeatures; o++)
            for (int i = 0; i < inFeatures; i++)
            {
                double sum = 0;
                for (int j = 0; j < rank; j++) sum += (double)b[o * rank + j] * a[j * inFeatures + i];
                product[o * inFeatures + i] = scaling * sum;
            }
        return product;
    }

    /// <summary>
    /// W's best rank-r approximation W·V_r·V_rᵀ from the top eigenvectors of WᵀW, by the cyclic Jacobi eigenvalue method
    /// written here independently of the library's SVD.
    /// </summary>
    private static double[] BestRankApproximation(float[] w, int rows, int cols, int rank)
    {
        var g = new double[cols, cols];
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < cols; j++)
                for (int k = 0; k < rows; k++) g[i, j] += (double)w[k * cols + i] * w[k * cols + j];
        var v = new double[cols, cols];
        for (int i = 0; i < cols; i++) v[i, i] = 1;
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0;
            for (int p = 0; p < cols; p++)
                for (int q = p + 1; q < cols; q++) off += g[p, q] * g[p, q];
            if (off < 1e-26) break;
            for (int p = 0; p < cols; p++)
                for (int q = p + 1; q < cols; q++)
                {
                    if (g[p, q] == 0) continue;
                    double theta = (g[q, q] - g[p, p]) / (2 * g[p, q]);
                    double t = Math.Sign(theta == 0 ? 1 : theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    for (int k = 0; k < cols; k++)
                    {
                        double gkp = g[k, p], gkq = g[k, q];
                        g[k, p] = c * gkp - s * gkq;
                        g[k, q] = s * gkp + c * gkq;
                    }
                    for (int k = 0; k < cols; k++)
                    {
                        double gpk = g[p, k], gqk = g[q, k];
                        g[p, k] = c * gpk - s * gqk;
                        g[q, k] = s * gpk + c * gqk;
                    }
                    for (int k = 0; k < cols; k++)
                    {
                        double vkp = v[k, p], vkq = v[k, q];
                        v[k, p] = c * vkp - s * vkq;
                        v[k, q] = s * vkp + c * vkq;
                    }
                }
        }
        var top = Enumerable.Range(0, cols).OrderByDescending(i => g[i, i]).Take(rank).ToArray();
        var approximation = new double[rows * cols];
        for (int r = 0; r < rows; r++)
            foreach (int e in top)
            {
                double projection = 0;
                for (int k = 0; k < cols; k++) projection += w[r * cols + k] * v[k, e];
                for (int k = 0; k < cols; k++) approximation[r * cols + k] += projection * v[k, e];
            }
        return approximation;
    }

    private static double FrobeniusDistance(double[] a, IReadOnlyList<double> b) => Math.Sqrt(a.Select((x, i) => (x - b[i]) * (x - b[i])).Sum());

    [Theory]
    [InlineData(-1)]
    [InlineData(4)]
    public void PissaLeavesTheModelUnchangedAndTheResidualPlusTheAdapterIsW(int iterations)
    {
        var args = new FinetuningArguments { LoraRank = 8, PissaInit = true, PissaIter = iterations };
        using var model = Create(args);
        using var plain = DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false);
        var batch = TrainingFixtures.Batch();

        Assert.Equal(plain.Evaluate(batch).Mean, model.Evaluate(batch).Mean, 1e-5);
        foreach (var layer in model.Tuners.Cast<MutatedInitLayer>())
        {
            var w = Weight(model, layer.ModulePath);
            var (a0, b0) = layer.Initial;
            Assert.Equal(a0, layer.Lora.A.Data);
            Assert.Equal(b0, layer.Lora.B.Data);
            var adapter = Product(b0, a0, layer.OutFeatures, layer.InFeatures, 8, layer.Lora.Scaling);
            // The residual W − s·B·A the run trains on, plus s·B·A, is W again.
            var merged = (float[])w.Clone();
            layer.MergeInto(merged, null);
            TrainingFixtures.AssertClose(layer.ModulePath, w, merged, 1e-5, 0);
            Assert.True(adapter.Max(Math.Abs) > 0.1, "the adapter must carry the principal part of W");
        }
    }

    [Fact]
    public void ExactPissaIsTheBestRankRApproximation()
    {
        using var model = Create(new FinetuningArguments { LoraRank = 8, PissaInit = true, PissaIter = -1, LoraAlpha = 32 });
        foreach (var layer in model.Tuners.Cast<MutatedInitLayer>())
        {
            var w = Weight(model, layer.ModulePath);
            var best = BestRankApproximation(w, layer.OutFeatures, layer.InFeatures, 8);
            var adapter = Product(layer.Lora.B.Data, layer.Lora.A.Data, layer.OutFeatures, layer.InFeatures, 8, layer.Lora.Scaling);
            double scale = Math.Sqrt(best.Sum(x => x * x));
            Assert.True(FrobeniusDistance(adapter, best) <= 1e-5 * scale, $"{layer.ModulePath}: s·B·A is {FrobeniusDistance(adapter, best):E3} from the best rank-8 approximation");
        }
    }

    [Fact]
    public void RandomizedPissaWithSixteenIterationsIsNearlyTheBest()
    {
        using var model = Create(new FinetuningArguments { LoraRank = 8, PissaInit = true, PissaIter = 16 });
        foreach (var layer in model.Tuners.Cast<MutatedInitLayer>())
        {
            var w = Weight(model, layer.ModulePath);
            var wd = w.Select(x => (double)x).ToArray();
            var best = BestRankApproximation(w, layer.OutFeatures, layer.InFeatures, 8);
            var adapter = Product(layer.Lora.B.Data, layer.Lora.A.Data, layer.OutFeatures, layer.InFeatures, 8, layer.Lora.Scaling);
            double bestError = FrobeniusDistance(wd, best), error = FrobeniusDistance(wd, adapter);
            Assert.True(error <= bestError * 1.01, $"{layer.ModulePath}: residual {error} against the best {bestError}");
        }
    }

    [Fact]
    public void OloraIsTheThinQrOfW()
    {
        var decoder = DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false);
        using var model = LoraFineTuning.CreateNew(decoder, new FinetuningArguments { LoraRank = 8, InitLoraWeights = "olora" }, new SeededRandom(1));
        var layer = model.Tuners.Cast<MutatedInitLayer>().First(l => l.OutFeatures > l.InFeatures);
        var w = Weight(model, layer.ModulePath);
        int rows = layer.OutFeatures, cols = layer.InFeatures;

        // At full rank Q·R reproduces W, Q's columns are orthonormal and R is upper triangular.
        var (r, q) = LoraInitialization.Initial("olora", w, rows, cols, cols, 1f, layer.ModulePath, decoder.Backend);
        TrainingFixtures.AssertClose("Q·R", w, Product(q, r, rows, cols, cols, 1).Select(x => (float)x).ToArray(), 1e-5, 1e-5);
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < cols; j++)
            {
                double dot = 0;
                for (int o = 0; o < rows; o++) dot += (double)q[o * cols + i] * q[o * cols + j];
                Assert.True(Math.Abs(dot - (i == j ? 1 : 0)) < 1e-5, $"QᵀQ[{i},{j}] = {dot}");
                if (j < i) Assert.Equal(0f, r[i * cols + j]);
            }
        // The rank-8 adapter is the first 8 columns of Q and rows of R.
        Assert.Equal(Enumerable.Range(0, rows * 8).Select(k => q[k / 8 * cols + k % 8]), layer.Lora.B.Data);
        Assert.Equal(r.Take(8 * cols), layer.Lora.A.Data);
    }

    [Fact]
    public void ASavedPissaAdapterReloadsOntoTheOriginalBaseAndItsConversionIsAPlainLoraWithTheSameLogits()
    {
        var fx = new Model.ReferenceFixture("qwen2-small-vocab");
        var batch = TrainingFixtures.Batch();
        string saved = Path.Combine(_dir, "pissa"), converted = Path.Combine(_dir, "converted");
        double trainedLoss;
        using (var model = Create(new FinetuningArguments { LoraRank = 4, PissaInit = true, PissaIter = 2, LoraTarget = ["q_proj", "v_proj", "down_proj"] }))
        {
            // A trained state: A and B moved away from the initial adapter.
            foreach (var a in model.Adapters)
                for (int i = 0; i < a.B.Data.Length; i++) a.B.Data[i] += 0.02f * MathF.Sin(i);
            trainedLoss = model.Evaluate(batch).Mean;
            model.Save(saved);
            model.SaveConverted(converted);
        }
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(saved, "adapter_config.json"))))
            Assert.Equal("pissa_niter_2", config.RootElement.GetProperty("init_lora_weights").GetString());
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(converted, "adapter_config.json"))))
        {
            Assert.True(config.RootElement.GetProperty("init_lora_weights").GetBoolean());
            Assert.Equal(8, config.RootElement.GetProperty("r").GetInt32());
            Assert.Equal(16, config.RootElement.GetProperty("lora_alpha").GetInt32());
        }

        using (var reloaded = PeftAdapterFolders.ResumeTraining(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), saved))
            Assert.Equal(trainedLoss, reloaded.Evaluate(batch).Mean, 1e-12);
        using (var plainLora = PeftAdapterFolders.ResumeTraining(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), converted))
        {
            Assert.IsType<LoraLayer>(((LoraFineTuning)plainLora).Tuners[0]);
            Assert.Equal(trainedLoss, plainLora.Evaluate(batch).Mean, 1e-5 * trainedLoss);
        }
        using var servedPissa = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [saved]);
        using var servedConverted = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [converted]);
        TrainingFixtures.AssertClose("logits", servedConverted.Evaluate(fx.InputIds, fx.AttentionMask).Logits,
            servedPissa.Evaluate(fx.InputIds, fx.AttentionMask).Logits, 1e-4, 1e-4);
    }

    [Fact]
    public void PissaOnAQuantizedBaseAndWithDoraAreRefusedWithTheReason()
    {
        var args = new FinetuningArguments { PissaInit = true };
        var e = Assert.Throws<ArgumentException>(() => SharpTune.FineTuning.TrainableModels.CheckCombination(args, [], new SharpTune.Quantization.QuantizationOptions(4)));
        Assert.Contains("cannot train on a quantized base", e.Message);
        var dora = Assert.Throws<ArgumentException>(() => Create(new FinetuningArguments { PissaInit = true, UseDora = true }));
        Assert.Contains("use_dora with init_lora_weights pissa_niter_16", dora.Message);
    }
}
