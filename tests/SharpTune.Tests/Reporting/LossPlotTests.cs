using System.Globalization;
using System.Xml.Linq;
using SharpTune.Reporting;

namespace SharpTune.Tests.Reporting;

public sealed class LossPlotTests : IDisposable
{
    private static readonly (byte, byte, byte) Curve = (0x1f, 0x77, 0xb4);
    private static readonly (byte, byte, byte) White = (255, 255, 255);
    private readonly string _directory = Directory.CreateTempSubdirectory("sharptune-plot-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>A straight line down from 2.0 at step 10 to 0.1 at step 200: the smoothed curve lags above it.</summary>
    private static (int Step, double Value)[] StraightLine() =>
        Enumerable.Range(1, 20).Select(i => (i * 10, 2.0 - (i - 1) * 0.1)).ToArray();

    [Fact]
    public void SmoothMatchesLlamaFactory()
    {
        // Expected values printed by LLaMA-Factory's extras/ploting.py smooth() under CPython.
        double[] shortRun = LossPlot.Smooth([2.5, 2.1, 2.3, 1.7, 1.9, 1.2, 1.4, 0.9, 1.1, 0.8]);
        Assert.Equal([2.5, 2.1881707184653356, 2.2753498297540657, 1.8268225196458108, 1.8838697224542202,
            1.350743211913695, 1.3891424840128392, 1.007820110618327, 1.079681082312907, 0.861649204921729], shortRun);

        double[] longRun = LossPlot.Smooth(Enumerable.Range(0, 120).Select(i => 0.5 + 2.0 / (1 + 0.05 * i) + i * 7 % 5 * 0.06).ToArray());
        Assert.Equal(2.5025863988226003, longRun[1]);
        Assert.Equal(1.207977013286784, longRun[59]);
        Assert.Equal(0.9347167031372381, longRun[119]);
        Assert.Empty(LossPlot.Smooth([]));
    }

    [Fact]
    public void PngDecodesAndShowsBothCurvesWhereTheyBelong()
    {
        var points = StraightLine();
        string png = LossPlot.Write(_directory, points)[0];
        Assert.Equal(Path.Combine(_directory, "training_loss.png"), png);
        var image = PngTestImage.Read(File.ReadAllBytes(png));

        Assert.Equal((640, 480), (image.Width, image.Height));
        Assert.Equal(["IHDR", "IDAT", "IEND"], image.ChunkTypes);
        Assert.Equal(White, image.Pixel(0, 0));
        Assert.Equal(White, image.Pixel(639, 479));

        var figure = Figure(points);
        Assert.Equal((0, 0, 0), image.Pixel(figure.Left - 1, (LossFigure.Top + LossFigure.Bottom) / 2)); // left spine

        double[] smoothed = LossPlot.Smooth(points.Select(p => p.Value).ToArray());
        var smoothedPixels = points.Select((p, i) => (figure.PixelX(p.Step), figure.PixelY(smoothed[i]))).ToArray();
        var rawPixels = points.Select(p => (figure.PixelX(p.Step), figure.PixelY(p.Value))).ToArray();
        // The opaque smoothed line shows its exact colour at every data point...
        foreach (var (x, y) in smoothedPixels)
            Assert.True(Near(image, x, y, 1, Curve), $"no curve colour near ({x:F1}, {y:F1})");
        // ...and the raw line, alpha 0.4 over white, where the smoothed one lags well above it.
        var faded = ((byte)165, (byte)201, (byte)225);
        Assert.True(Near(image, rawPixels[10].Item1, rawPixels[10].Item2, 1, faded));
        Assert.True(Math.Abs(smoothedPixels[10].Item2 - rawPixels[10].Item2) > 6);

        // Pixels of the exact curve colour lie on the smoothed line or in the legend's sample, nowhere else.
        for (int y = LossFigure.Top; y < LossFigure.Bottom; y++)
            for (int x = figure.Left; x < LossFigure.Right; x++)
                if (image.Pixel(x, y) == Curve)
                    Assert.True(DistanceToPolyline(x + 0.5, y + 0.5, smoothedPixels) < 1.5 || InLegend(figure, x, y), $"stray curve pixel at ({x}, {y})");
    }

    [Fact]
    public void SvgIsWellFormedAndCarriesTheSameCurves()
    {
        var points = StraightLine();
        string svgPath = LossPlot.Write(_directory, points, "eval_loss")[1];
        Assert.Equal(Path.Combine(_directory, "training_eval_loss.svg"), svgPath);
        XDocument svg = XDocument.Parse(File.ReadAllText(svgPath));
        XNamespace ns = "http://www.w3.org/2000/svg";
        Assert.Equal(ns + "svg", svg.Root!.Name);

        var curves = svg.Descendants(ns + "polyline").Select(Points).Where(p => p.Length == points.Length).ToArray();
        Assert.Equal(2, curves.Length);
        var (raw, smoothed) = (curves[0], curves[1]);
        Assert.Equal("0.4", svg.Descendants(ns + "polyline").First().Attribute("stroke-opacity")?.Value);

        // Equal step increments give equal x increments; y is an affine image of the value.
        double dx = (raw[^1].X - raw[0].X) / (points.Length - 1), pixelsPerUnit = (raw[^1].Y - raw[0].Y) / (points[^1].Value - points[0].Value);
        Assert.True(dx > 0 && pixelsPerUnit < 0);
        double[] smoothValues = LossPlot.Smooth(points.Select(p => p.Value).ToArray());
        for (int i = 0; i < points.Length; i++)
        {
            Assert.Equal(raw[0].X + i * dx, raw[i].X, 0.02);
            Assert.Equal(raw[i].X, smoothed[i].X);
            Assert.Equal(raw[0].Y + (points[i].Value - points[0].Value) * pixelsPerUnit, raw[i].Y, 0.02);
            Assert.Equal(raw[0].Y + (smoothValues[i] - points[0].Value) * pixelsPerUnit, smoothed[i].Y, 0.02);
        }

        var texts = svg.Descendants(ns + "text").Select(t => t.Value).ToArray();
        Assert.Contains($"training eval_loss of {_directory}", texts);
        Assert.Contains("step", texts);
        Assert.Contains("eval_loss", texts);
        Assert.Contains("original", texts);
        Assert.Contains("smoothed", texts);
    }

    [Fact]
    public void WritesAtomicallyAndNamesFilesAsLlamaFactory()
    {
        var written = LossPlot.Write(_directory, [(1, 0.5)], "train/loss");
        string[] expected = [Path.Combine(_directory, "training_train_loss.png"), Path.Combine(_directory, "training_train_loss.svg")];
        Assert.Equal(expected, written);
        Assert.Equal(expected.Order(), Directory.GetFiles(_directory).Order()); // no temp file left behind
    }

    [Fact]
    public void NoPointsWritesNothing()
    {
        Assert.Empty(LossPlot.Write(_directory, []));
        Assert.Empty(Directory.GetFileSystemEntries(_directory));
    }

    [Fact]
    public void NonFiniteValueIsRejected()
    {
        var error = Assert.Throws<ArgumentException>(() => LossPlot.Write(_directory, [(1, 1.0), (2, double.NaN)]));
        Assert.Equal("cannot plot loss: the value logged at step 2 is NaN", error.Message);
    }

    [Theory]
    [InlineData(0.0, 1.0, 5, false, "0.0 0.2 0.4 0.6 0.8 1.0")]
    [InlineData(0.0, 1.0, 4, false, "0.00 0.25 0.50 0.75 1.00")]
    [InlineData(0.71, 2.29, 8, false, "0.8 1.0 1.2 1.4 1.6 1.8 2.0 2.2")]
    [InlineData(-4.5, 104.5, 10, true, "0 20 40 60 80 100")]
    [InlineData(0.9, 3.1, 10, true, "1 2 3")]
    public void TicksFallOnNiceNumbers(double min, double max, int maxCount, bool integers, string expected) =>
        Assert.Equal(expected, string.Join(' ', AxisTicks.Compute(min, max, maxCount, integers).Labels));

    private static LossFigure Figure((int Step, double Value)[] points)
    {
        double[] values = points.Select(p => p.Value).ToArray();
        return new LossFigure("t", "step", "loss", points.Select(p => (double)p.Step).ToArray(), values, LossPlot.Smooth(values));
    }

    private static bool Near(PngTestImage image, double x, double y, int radius, (byte, byte, byte) colour)
    {
        for (int py = (int)y - radius; py <= (int)y + radius; py++)
            for (int px = (int)x - radius; px <= (int)x + radius; px++)
                if (image.Pixel(px, py) == colour) return true;
        return false;
    }

    private static bool InLegend(LossFigure figure, int x, int y) =>
        figure.Elements.OfType<BoxElement>().Any(b => b.Opacity < 1 && x >= b.X && x < b.X + b.Width && y >= b.Y && y < b.Y + b.Height);

    private static double DistanceToPolyline(double x, double y, (double X, double Y)[] line)
    {
        double best = double.MaxValue;
        for (int i = 0; i + 1 < line.Length; i++)
        {
            var (a, b) = (line[i], line[i + 1]);
            double dx = b.X - a.X, dy = b.Y - a.Y;
            double t = Math.Clamp(((x - a.X) * dx + (y - a.Y) * dy) / (dx * dx + dy * dy), 0, 1);
            best = Math.Min(best, Math.Sqrt(Math.Pow(a.X + t * dx - x, 2) + Math.Pow(a.Y + t * dy - y, 2)));
        }
        return best;
    }

    private static (double X, double Y)[] Points(XElement polyline) =>
        polyline.Attribute("points")!.Value.Split(' ')
            .Select(p => p.Split(','))
            .Select(p => (double.Parse(p[0], CultureInfo.InvariantCulture), double.Parse(p[1], CultureInfo.InvariantCulture)))
            .ToArray();
}
