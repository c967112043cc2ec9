using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Tests.Model;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Tests.Engine;

namespace SharpTune.Tests.Peft;

/// <summary>Unmerged LoRA adapters in the forward pass, against PEFT's forward_with_adapter references.</summary>
public sealed class LoraInferenceTests : IDisposable
{
    private readonly string _dir = LoraTestFolders.NewTempDir("lora-inference");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static void AssertClose(float expected, float actual, string what)
    {
        double limit = 1e-4 + 1e-4 * Math.Abs(expected);
        Assert.True(Math.Abs(expected - actual) <= limit, $"{what}: expected {expected}, got {actual}");
    }

    /// <summary>Hidden states, every logit, the logits at the fixed ids, top-5 ids and the loss at real positions.</summary>
    private static void AssertMatchesForwardWithAdapter(ReferenceFixture fx, float[] hidden, float[] logits)
    {
        var reference = fx.Reference.GetProperty("forward_with_adapter");
        float[] expectedHidden = fx.ForwardTensor("last_hidden_state"), expectedLogits = fx.ForwardTensor("logits");
        int[] fixedIds = ReferenceFixture.IntArray(reference.GetProperty("fixed_vocab_ids"));
        float[] atFixed = fx.ForwardTensor("logits_at_fixed_ids");
        var top5 = reference.GetProperty("top5_ids");
        int time = fx.InputIds[0].Length, width = expectedHidden.Length / (fx.InputIds.Length * time), vocab = logits.Length / (fx.InputIds.Length * time);
        for (int b = 0; b < fx.InputIds.Length; b++)
            for (int t = 0; t < time; t++)
            {
                if (fx.AttentionMask[b][t] == 0) continue;
                int row = b * time + t;
                for (int i = 0; i < width; i++) AssertClose(expectedHidden[row * width + i], hidden[row * width + i], $"hidden[{b},{t},{i}]");
                for (int v = 0; v < vocab; v++) AssertClose(expectedLogits[row * vocab + v], logits[row * vocab + v], $"logits[{b},{t},{v}]");
                for (int j = 0; j < fixedIds.Length; j++)
                    AssertClose(atFixed[row * fixedIds.Length + j], logits[row * vocab + fixedIds[j]], $"logits[{b},{t},{fixedIds[j]}]");
                var topIds = logits.AsSpan(row * vocab, vocab).ToArray()
                    .Select((value, id) => (value, id)).OrderByDescending(p => p.value).Take(5).Select(p => p.id);
                Assert.Equal(ReferenceFixture.IntArray(top5[b][t]), topIds);
            }
        var (loss, _) = CausalLmLoss.Compute(logits, fx.Labels);
        Assert.Equal(reference.GetProperty("loss").GetDouble(), loss, 1e-5 * reference.GetProperty("loss").GetDouble());
    }

    [Theory]
    [InlineData("lora")]
    [InlineData("lora/rslora")]
    public void ForwardWithAdapterMatchesPeft(string fixture)
    {
        var fx = new ReferenceFixture(fixture);
        using var model = DecoderModel.LoadForGeneration(LoraTestFolders.Base, adapterDirectories: [fx.Directory]);

        var (hidden, logits) = model.Evaluate(fx.InputIds, fx.AttentionMask);

        Assert.Single(model.Adapters);
        AssertMatchesForwardWithAdapter(fx, hidden, logits);
    }

    [Fact]
    public void AdapterLoadedAfterwardsGivesTheSameForward()
    {
        var fx = new ReferenceFixture("lora/rslora");
        using var model = DecoderModel.LoadForGeneration(LoraTestFolders.Base);
        var (_, before) = model.Evaluate(fx.InputIds, fx.AttentionMask);

        model.LoadAdapter(fx.Directory);
        var (hidden, logits) = model.Evaluate(fx.InputIds, fx.AttentionMask);

        Assert.True(before.Zip(logits).Max(p => Math.Abs(p.First - p.Second)) > 1e-2, "the adapter must change the logits");
        AssertMatchesForwardWithAdapter(fx, hidden, logits);
    }

    [Fact]
    public void DecodeStepsWithTheCacheEqualTheFullForward()
    {
        var fx = new ReferenceFixture("lora");
        using var model = DecoderModel.LoadForGeneration(LoraTestFolders.Base, adapterDirectories: [fx.Directory]);
        int[] ids = fx.InputIds[0];
        var (full, _) = model.Evaluate([ids], [ids.Select(_ => 1).ToArray()]);

        var cache = model.CreateCache(1, ids.Length);
        int hiddenSize = model.Config.HiddenSize;
        var stepOutput = model.Backend.Allocate(1, hiddenSize);
        for (int t = 0; t < ids.Length; t++)
        {
            model.Forward([ids[t]], [t], [1], 1, 1, cache, stepOutput);
            var step = model.Backend.ToHost(stepOutput);
            for (int i = 0; i < hiddenSize; i++)
                Assert.True(Math.Abs(full[t * hiddenSize + i] - step[i]) <= 1e-5, $"hidden[{t},{i}]");
        }
    }

    [Fact]
    public void ModulesToSaveTensorReplacesTheBaseTensor()
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        float[] lmHead;
        using (var checkpoint = SafetensorsCheckpoint.OpenDirectory(fx.Directory)) lmHead = checkpoint.ReadFloat32("lm_head.weight");
        string adapter = LoraTestFolders.WriteAdapter(Path.Combine(_dir, "head"), 8, [],
            [("lm_head.weight", [512, 48], lmHead.Select(v => -3 * v).ToArray())], ["lm_head"]);
        using var model = DecoderModel.LoadForGeneration(fx.Directory);
        var (_, baseLogits) = model.Evaluate(fx.InputIds, fx.AttentionMask);

        model.LoadAdapter(adapter);
        var (_, logits) = model.Evaluate(fx.InputIds, fx.AttentionMask);

        for (int i = 0; i < logits.Length; i++)
            Assert.True(Math.Abs(-3 * baseLogits[i] - logits[i]) <= 1e-4 * (1 + Math.Abs(logits[i])), $"logit {i}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public void LoraLayerEvaluationForwardAddsScaledProductToTheOutput(int rows)
    {
        const int rank = 3, inFeatures = 5, outFeatures = 4;
        const float scaling = 1.5f;
        var pair = new LoraPair("m", Enumerable.Range(0, rank * inFeatures).Select(i => MathF.Cos(i)).ToArray(),
            Enumerable.Range(0, outFeatures * rank).Select(i => MathF.Sin(i + 1)).ToArray(), rank, inFeatures, outFeatures);
        var x = Enumerable.Range(0, rows * inFeatures).Select(i => 0.1f * i - 1).ToArray();
        var expected = Enumerable.Range(0, rows * outFeatures).Select(i => (float)i).ToArray();
        var backend = CpuBackend.CreateDefault();
        var y = backend.FromHost(expected, rows, outFeatures);
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outFeatures; o++)
            {
                double sum = 0;
                for (int k = 0; k < rank; k++)
                {
                    double ax = 0;
                    for (int i = 0; i < inFeatures; i++) ax += pair.A[k * inFeatures + i] * x[r * inFeatures + i];
                    sum += pair.B[o * rank + k] * ax;
                }
                expected[r * outFeatures + o] += (float)(scaling * sum);
            }

        new LoraLayer(pair, scaling, dropout: 0.5f, backend).Forward(backend.FromHost(x, rows, inFeatures), rows, y, TunerPass.Evaluate, random: null);

        var actual = backend.ToHost(y);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-4f);
    }
}
