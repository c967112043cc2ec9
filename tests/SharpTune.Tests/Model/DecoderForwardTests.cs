using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Training;
using SharpTune.Tests.Engine;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Model;

/// <summary>The decoder's forward pass against transformers' own outputs on the same weights and batch.</summary>
public class DecoderForwardTests
{
    private static void AssertClose(float expected, float actual, double atol, double rtol, string what)
    {
        double limit = atol + rtol * Math.Abs(expected);
        Assert.True(Math.Abs(expected - actual) <= limit, $"{what}: expected {expected}, got {actual} (limit {limit:g3})");
    }

    /// <summary>Compares [B,T,W] tensors at the real (attention_mask = 1) positions only.</summary>
    private static void AssertRealPositionsClose(float[] expected, float[] actual, int[][] mask, int width, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        int time = mask[0].Length;
        for (int b = 0; b < mask.Length; b++)
            for (int t = 0; t < time; t++)
            {
                if (mask[b][t] == 0) continue;
                int offset = (b * time + t) * width;
                for (int i = 0; i < width; i++)
                    AssertClose(expected[offset + i], actual[offset + i], 1e-4, 1e-4, $"{what}[{b},{t},{i}]");
            }
    }

    /// <summary>The shifted cross-entropy over the logits equals transformers' loss on the fixture's labels.</summary>
    private static void AssertLossMatchesReference(ReferenceFixture fx, float[] logits)
    {
        var forward = fx.Reference.GetProperty("forward");
        var (loss, tokens) = CausalLmLoss.Compute(logits, fx.Labels);
        Assert.Equal(forward.GetProperty("num_loss_tokens").GetInt32(), tokens);
        AssertClose((float)forward.GetProperty("loss").GetDouble(), (float)loss, 0, 1e-5, "loss");
    }

    [Theory]
    [GemmKernelData("managed"), GemmKernelData("onednn"), GemmKernelData("openblas")]
    public void SmallVocabFp32MatchesTransformersOnEveryBackend(string kernel)
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        using var model = DecoderModel.LoadForGeneration(fx.Directory, new CpuBackend(GemmKernels.Create(kernel)));
        var (hidden, logits) = model.Evaluate(fx.InputIds, fx.AttentionMask);

        AssertRealPositionsClose(fx.ForwardTensor("last_hidden_state"), hidden, fx.AttentionMask, model.Config.HiddenSize, "last_hidden_state");
        AssertRealPositionsClose(fx.ForwardTensor("logits"), logits, fx.AttentionMask, model.Config.VocabSize, "logits");
        AssertLossMatchesReference(fx, logits);
    }

    [Fact]
    public void TinyBf16MatchesTransformers()
    {
        var fx = new ReferenceFixture("qwen2-tiny");
        using var model = DecoderModel.LoadForGeneration(fx.Directory);
        var (hidden, logits) = model.Evaluate(fx.InputIds, fx.AttentionMask);
        AssertRealPositionsClose(fx.ForwardTensor("last_hidden_state"), hidden, fx.AttentionMask, model.Config.HiddenSize, "last_hidden_state");

        var forward = fx.Reference.GetProperty("forward");
        int[] fixedIds = ReferenceFixture.IntArray(forward.GetProperty("fixed_vocab_ids"));
        float[] atFixed = fx.ForwardTensor("logits_at_fixed_ids");
        float[] logsumexp = fx.ForwardTensor("logsumexp");
        var top5 = forward.GetProperty("top5_ids");
        int vocab = model.Config.VocabSize, time = fx.InputIds[0].Length;
        for (int b = 0; b < fx.InputIds.Length; b++)
            for (int t = 0; t < time; t++)
            {
                if (fx.AttentionMask[b][t] == 0) continue;
                var row = new ArraySegment<float>(logits, (b * time + t) * vocab, vocab);
                for (int j = 0; j < fixedIds.Length; j++)
                    AssertClose(atFixed[(b * time + t) * fixedIds.Length + j], row[fixedIds[j]], 1e-4, 1e-4, $"logits[{b},{t},{fixedIds[j]}]");
                AssertClose(logsumexp[b * time + t], (float)CausalLmLoss.LogSumExp(row.AsSpan()), 1e-4, 1e-4, $"logsumexp[{b},{t}]");
                int[] expectedTop = ReferenceFixture.IntArray(top5[b][t]);
                int[] actualTop = Enumerable.Range(0, vocab).OrderByDescending(i => row[i]).Take(5).ToArray();
                Assert.Equal(expectedTop, actualTop);
            }

        AssertLossMatchesReference(fx, logits);
    }

    [Fact]
    public void ShardedAndSingleFileCheckpointsGiveIdenticalOutputs()
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        using var single = DecoderModel.LoadForGeneration(fx.Directory);
        using var sharded = DecoderModel.LoadForGeneration(TestPaths.Fixtures("qwen2-small-vocab-sharded"));
        var a = single.Evaluate(fx.InputIds, fx.AttentionMask);
        var b = sharded.Evaluate(fx.InputIds, fx.AttentionMask);
        Assert.Equal(a.Logits, b.Logits);
    }

    [Fact]
    public void LeftPaddedSequenceWithShiftedPositionsEqualsItsUnpaddedSelf()
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        using var model = DecoderModel.LoadForGeneration(fx.Directory);
        int[] sequence = fx.InputIds[1].Where((_, i) => fx.AttentionMask[1][i] == 1).ToArray();
        int pad = 3, hiddenSize = model.Config.HiddenSize;

        var aloneOutput = model.Backend.Allocate(sequence.Length, hiddenSize);
        model.Forward(sequence, Enumerable.Range(0, sequence.Length).ToArray(), Enumerable.Repeat((byte)1, sequence.Length).ToArray(),
            1, sequence.Length, model.CreateCache(1, sequence.Length), aloneOutput);
        var alone = model.Backend.ToHost(aloneOutput);

        int[] padded = Enumerable.Repeat(0, pad).Concat(sequence).ToArray();
        // transformers' generate derives positions from the mask (cumsum − 1), so real tokens keep 0, 1, 2, ...
        int[] positions = Enumerable.Repeat(1, pad).Concat(Enumerable.Range(0, sequence.Length)).ToArray();
        byte[] mask = Enumerable.Repeat((byte)0, pad).Concat(Enumerable.Repeat((byte)1, sequence.Length)).ToArray();
        var paddedOutput = model.Backend.Allocate(padded.Length, hiddenSize);
        model.Forward(padded, positions, mask, 1, padded.Length, model.CreateCache(1, padded.Length), paddedOutput);
        var withPadding = model.Backend.ToHost(paddedOutput);

        for (int t = 0; t < sequence.Length; t++)
            for (int i = 0; i < hiddenSize; i++)
                AssertClose(alone[t * hiddenSize + i], withPadding[(pad + t) * hiddenSize + i], 1e-5, 1e-5, $"hidden[{t},{i}]");
    }
}
