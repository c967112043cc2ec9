using SharpTune.IO;

namespace SharpTune.Reporting;

/// <summary>
/// LLaMA-Factory's <c>plot_loss</c> (<c>src/llamafactory/extras/ploting.py</c>): the logged values of one metric
/// against the step, raw and EMA-smoothed, saved as <c>training_{key}.png</c> in the output directory; an SVG
/// of the same figure is written beside it.
/// </summary>
public static class LossPlot
{
    /// <summary>
    /// Draws the curve of <paramref name="key"/> ("loss", "eval_loss", ...) and writes <c>training_{key}.png</c>
    /// and <c>training_{key}.svg</c> ('/' in the key becomes '_', as in LLaMA-Factory) atomically. Returns the
    /// paths written, PNG first; with no points nothing is written and the list is empty (LLaMA-Factory then
    /// warns "No metric {key} to plot.").
    /// </summary>
    public static IReadOnlyList<string> Write(string outputDirectory, IReadOnlyList<(int Step, double Value)> points, string key = "loss")
    {
        ArgumentException.ThrowIfNullOrEmpty(outputDirectory);
        ArgumentException.ThrowIfNullOrEmpty(key);
        if (points.Count == 0) return [];
        foreach (var (step, value) in points)
            if (!double.IsFinite(value))
                throw new ArgumentException($"cannot plot {key}: the value logged at step {step} is {value}");

        double[] values = points.Select(p => p.Value).ToArray();
        var figure = new LossFigure($"training {key} of {outputDirectory}", "step", key,
            points.Select(p => (double)p.Step).ToArray(), values, Smooth(values));

        Directory.CreateDirectory(outputDirectory);
        string stem = Path.Combine(outputDirectory, $"training_{key.Replace('/', '_')}");
        AtomicFile.Write(stem + ".png", stream => FigurePng.Write(stream, figure));
        AtomicFile.WriteText(stem + ".svg", FigureSvg.Render(figure));
        return [stem + ".png", stem + ".svg"];
    }

    /// <summary>
    /// LLaMA-Factory's <c>smooth</c> (<c>extras/ploting.py</c>), the TensorBoard-style EMA: the weight grows with
    /// the number of values, w = 1.8·(sigmoid(0.05·n) − 0.5), and s[i] = s[i−1]·w + (1 − w)·x[i] with s[−1] = x[0].
    /// The arithmetic is in the same order as the Python so the results match it bit for bit.
    /// </summary>
    public static double[] Smooth(IReadOnlyList<double> values)
    {
        var smoothed = new double[values.Count];
        if (values.Count == 0) return smoothed;
        double weight = 1.8 * (1 / (1 + Math.Exp(-0.05 * values.Count)) - 0.5);
        double last = values[0];
        for (int i = 0; i < values.Count; i++)
        {
            last = last * weight + (1 - weight) * values[i];
            smoothed[i] = last;
        }
        return smoothed;
    }
}
