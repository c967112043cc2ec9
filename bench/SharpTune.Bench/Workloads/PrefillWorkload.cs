using System.Globalization;
using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Training.Model;

namespace SharpTune.Bench;

/// <summary>
/// One forward pass over a --seq token prompt (default 512) on a generated --preset model, with logits for the
/// last position only, as generation's prefill computes them; --with-pytorch true first runs the same pass in plain
/// PyTorch, computing in the dtype the weights are stored in (<see cref="PyTorchSide"/>).
/// </summary>
public sealed class PrefillWorkload : IWorkload
{
    public string Name => "prefill";

    public string Description => "prefill tokens/s: one forward pass over a --seq token prompt plus last-row logits";

    public void Run(BenchContext context)
    {
        string dtype = context.Option("dtype", "bfloat16");
        string folder = BenchModels.Ensure(context.Preset, context.Json, dtype);
        if (PyTorchSide.Requested(context))
            PyTorchSide.Run(context, "prefill", folder, "--seq", context.Seq.ToString(CultureInfo.InvariantCulture), "--dtype", dtype);
        using var model = DecoderModel.LoadForGeneration(folder);
        if (!context.Json) Console.WriteLine($"# {model.Backend.Describe()}");
        var c = model.Config;
        int tokens = context.Seq;

        var random = new Random(0);
        int[] ids = Enumerable.Range(0, tokens).Select(_ => random.Next(c.VocabSize)).ToArray();
        int[] positions = Enumerable.Range(0, tokens).ToArray();
        byte[] mask = Enumerable.Repeat((byte)1, tokens).ToArray();
        var cache = model.CreateCache(1, tokens);
        var backend = model.Backend;
        var hidden = backend.Allocate(tokens, c.HiddenSize);
        var last = backend.Allocate(1, c.HiddenSize);
        var logits = backend.Allocate(1, c.VocabSize);

        double seconds = context.MedianSeconds(() =>
        {
            cache.Clear();
            model.Forward(ids, positions, mask, 1, tokens, cache, hidden);
            backend.CopyRows(hidden, tokens - 1, last, 0, 1);
            model.Logits(last, 1, logits);
        });

        context.Report("prefill_tokens_per_s", tokens / seconds, "tokens/s");
        context.Report("prefill_ms_per_run", seconds * 1e3, "ms");
        context.Report("prefill_gflops", Flops(c, tokens) / seconds / 1e9, "GFLOP/s");
    }

    /// <summary>
    /// Multiply-add flops of the pass, 2 per multiply-accumulate:
    ///   projections  2 · P · T, P = the layers' projection parameters (q, k, v, o, gate, up, down; no embedding),
    ///   attention    L · heads · 4 · headDim · T(T+1)/2 (QKᵀ and P·V; query t sees t+1 keys under the causal mask),
    ///   lm_head      2 · hidden · vocab for the one last row.
    /// Norms, RoPE, SwiGLU, softmax and biases are O(T·hidden) and left out.
    /// </summary>
    private static double Flops(ModelConfig c, int tokens) =>
        2.0 * BenchModels.LayerMatrixParams(c) * tokens
        + (double)c.NumLayers * c.NumHeads * 4.0 * c.HeadDim * tokens * (tokens + 1) / 2
        + 2.0 * c.HiddenSize * c.VocabSize;
}
