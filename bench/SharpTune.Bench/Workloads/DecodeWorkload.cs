using System.Diagnostics;
using System.Globalization;
using SharpTune.Engine;
using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Training.Model;

namespace SharpTune.Bench;

/// <summary>
/// Greedy cached decoding on a generated --preset model: a --seq token prompt (default 32) is prefilled
/// untimed, then --new-tokens steps (default 64) are timed, each one forward pass of the previous token, the
/// lm_head row and the argmax; --with-pytorch true first decodes the same way in plain PyTorch, computing in the dtype
/// the weights are stored in (<see cref="PyTorchSide"/>).
/// </summary>
public sealed class DecodeWorkload : IWorkload
{
    public string Name => "decode";

    public string Description => "greedy decode tokens/s after a --seq token prompt (KV cache), prefill excluded";

    public int DefaultSeq => 32;

    public void Run(BenchContext context)
    {
        int promptTokens = context.Seq;
        int newTokens = int.Parse(context.Option("new-tokens", "64"), CultureInfo.InvariantCulture);
        string dtype = context.Option("dtype", "bfloat16");
        string folder = BenchModels.Ensure(context.Preset, context.Json, dtype);
        if (PyTorchSide.Requested(context))
            PyTorchSide.Run(context, "decode", folder, "--seq", promptTokens.ToString(CultureInfo.InvariantCulture), "--new-tokens", newTokens.ToString(CultureInfo.InvariantCulture), "--dtype", dtype);
        using var model = DecoderModel.LoadForGeneration(folder);
        if (!context.Json) Console.WriteLine($"# {model.Backend.Describe()}");
        var c = model.Config;

        var random = new Random(0);
        int[] prompt = Enumerable.Range(0, promptTokens).Select(_ => random.Next(c.VocabSize)).ToArray();
        int[] positions = Enumerable.Range(0, promptTokens).ToArray();
        byte[] mask = Enumerable.Repeat((byte)1, promptTokens).ToArray();
        var cache = model.CreateCache(1, promptTokens + newTokens);
        var backend = model.Backend;
        var hidden = backend.Allocate(promptTokens, c.HiddenSize);
        var last = backend.Allocate(1, c.HiddenSize);
        var logits = backend.Allocate(1, c.VocabSize);
        // Generation reads each step's logits back to the host to choose the next token.
        var hostLogits = new float[c.VocabSize];
        int[] stepId = new int[1], stepPosition = new int[1];
        byte[] stepMask = [1];

        double seconds = context.MedianSeconds(() =>
        {
            cache.Clear();
            model.Forward(prompt, positions, mask, 1, promptTokens, cache, hidden);
            backend.CopyRows(hidden, promptTokens - 1, last, 0, 1);
            model.Logits(last, 1, logits);
            backend.CopyToHost(logits, 0, hostLogits);
            stepId[0] = LogitsProcessing.ArgMax(hostLogits);

            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < newTokens; i++)
            {
                stepPosition[0] = promptTokens + i;
                model.Forward(stepId, stepPosition, stepMask, 1, 1, cache, last);
                model.Logits(last, 1, logits);
                backend.CopyToHost(logits, 0, hostLogits);
                stepId[0] = LogitsProcessing.ArgMax(hostLogits);
            }
            return Stopwatch.GetElapsedTime(start).TotalSeconds;
        });

        // Each step reads every projection matrix once and the lm_head matrix once (tied to the embedding or not,
        // it is one vocab × hidden matrix per token); norms, biases, the embedding row and the KV cache are small.
        double bytesPerToken = DTypeInfo.SizeOf(model.StoredDType) * (double)(BenchModels.LayerMatrixParams(c) + (long)c.VocabSize * c.HiddenSize);
        context.Report("decode_tokens_per_s", newTokens / seconds, "tokens/s");
        context.Report("decode_ms_per_token", seconds / newTokens * 1e3, "ms");
        context.Report("decode_weight_bytes_per_token", bytesPerToken / 1e6, "MB");
        context.Report("decode_weight_bandwidth", bytesPerToken * newTokens / seconds / 1e9, "GB/s");
    }
}
