namespace SharpTune.Reporting;

/// <summary>What a figure is made of; the PNG and SVG renderers draw the same list in order.</summary>
internal abstract record FigureElement;

/// <summary>A pixel-aligned filled box (background, frame, ticks, legend panel).</summary>
internal sealed record BoxElement(int X, int Y, int Width, int Height, Rgb Colour, double Opacity = 1) : FigureElement;

/// <summary>A stroked polyline with round joins and caps.</summary>
internal sealed record LineElement(IReadOnlyList<PixelPoint> Points, Rgb Colour, double Opacity, double Width) : FigureElement;

internal enum TextAnchor { Start, Middle, End }

/// <summary>Text whose baseline passes through (X, Y), anchored there at its start, middle or end; upward text
/// reads bottom to top. <see cref="Scale"/> multiplies the bitmap font's pixels (cap height 7·scale).</summary>
internal sealed record TextElement(string Text, double X, double Y, TextAnchor Anchor, int Scale, bool Upwards = false) : FigureElement;

/// <summary>
/// The layout of LLaMA-Factory's loss figure (<c>extras/ploting.py</c> <c>plot_loss</c>): matplotlib's default
/// 6.4×4.8 in figure at dpi 100, the raw curve in #1f77b4 at alpha 0.4 labelled "original", the smoothed curve
/// opaque labelled "smoothed", title, axis labels and a legend placed where it covers the least of the curves.
/// </summary>
internal sealed class LossFigure
{
    public const int Width = 640, Height = 480;
    public static readonly Rgb CurveColour = new(0x1f, 0x77, 0xb4);
    public const double OriginalOpacity = 0.4;
    /// <summary>matplotlib's default line width, 1.5 pt, at 100 dpi.</summary>
    public const double LineWidth = 2;

    private const int TextScale = 2, Cap = BitmapFont.CapHeight * TextScale, Descent = 2 * TextScale;
    private const int TickLength = 5, LabelGap = 4, Margin = 8;
    /// <summary>The plot area: title above, tick labels and the x label below; <see cref="Left"/> depends on the
    /// widest y tick label.</summary>
    public const int Top = Margin + Cap + Descent + 2 * Margin, Right = Width - 2 * Margin;
    public const int Bottom = Height - Margin - (1 + TickLength + LabelGap + Cap + Descent + Margin + Cap + Descent);
    private static readonly Rgb LegendEdge = new(0xcc, 0xcc, 0xcc);

    public int Left { get; }
    public double XMin { get; }
    public double XMax { get; }
    public double YMin { get; }
    public double YMax { get; }
    public IReadOnlyList<FigureElement> Elements { get; }

    public LossFigure(string title, string xLabel, string yLabel, IReadOnlyList<double> xs, IReadOnlyList<double> raw, IReadOnlyList<double> smoothed)
    {
        (XMin, XMax) = WithMargins(xs.Min(), xs.Max());
        (YMin, YMax) = WithMargins(Math.Min(raw.Min(), smoothed.Min()), Math.Max(raw.Max(), smoothed.Max()));
        var yTicks = AxisTicks.Compute(YMin, YMax, 8, integers: false);
        int yLabelBaseline = Margin + Cap;
        Left = yLabelBaseline + Descent + 2 * Margin + yTicks.Labels.Max(l => BitmapFont.MeasureWidth(l, TextScale)) + LabelGap + TickLength + 1;
        var xTicks = FitXTicks();

        var rawLine = new LineElement(ToPixels(xs, raw), CurveColour, OriginalOpacity, LineWidth);
        var smoothedLine = new LineElement(ToPixels(xs, smoothed), CurveColour, 1, LineWidth);
        var elements = new List<FigureElement> { new BoxElement(0, 0, Width, Height, Rgb.White), rawLine, smoothedLine };
        elements.AddRange(Frame(Left - 1, Top - 1, Right - Left + 2, Bottom - Top + 2, Rgb.Black));

        int tickLabelBaseline = Bottom + 1 + TickLength + LabelGap + Cap;
        for (int i = 0; i < xTicks.Values.Count; i++)
        {
            int column = (int)Math.Floor(PixelX(xTicks.Values[i]));
            elements.Add(new BoxElement(column, Bottom + 1, 1, TickLength, Rgb.Black));
            elements.Add(new TextElement(xTicks.Labels[i], column + 0.5, tickLabelBaseline, TextAnchor.Middle, TextScale));
        }
        for (int i = 0; i < yTicks.Values.Count; i++)
        {
            int row = (int)Math.Floor(PixelY(yTicks.Values[i]));
            elements.Add(new BoxElement(Left - 1 - TickLength, row, TickLength, 1, Rgb.Black));
            elements.Add(new TextElement(yTicks.Labels[i], Left - 1 - TickLength - LabelGap, row + 0.5 + Cap / 2.0, TextAnchor.End, TextScale));
        }

        double centreX = (Left + Right) / 2.0;
        elements.Add(FitTitle(title, centreX));
        elements.Add(new TextElement(xLabel, centreX, tickLabelBaseline + Descent + Margin + Cap, TextAnchor.Middle, TextScale));
        elements.Add(new TextElement(yLabel, yLabelBaseline, (Top + Bottom) / 2.0, TextAnchor.Middle, TextScale, Upwards: true));
        elements.AddRange(Legend(rawLine, smoothedLine));
        Elements = elements;
    }

    public double PixelX(double x) => Left + (x - XMin) / (XMax - XMin) * (Right - Left);

    public double PixelY(double y) => Bottom - (y - YMin) / (YMax - YMin) * (Bottom - Top);

    /// <summary>matplotlib's default 5% data margins; a single value gets a window around it.</summary>
    private static (double Min, double Max) WithMargins(double min, double max)
    {
        double pad = max > min ? 0.05 * (max - min) : min == 0 ? 0.5 : 0.05 * Math.Abs(min);
        return (min - pad, max + pad);
    }

    /// <summary>The densest nice x ticks whose labels still leave a clear gap between each other.</summary>
    private AxisTicks FitXTicks()
    {
        for (int count = 10; ; count--)
        {
            var ticks = AxisTicks.Compute(XMin, XMax, count, integers: true);
            double spacing = ticks.Step / (XMax - XMin) * (Right - Left);
            if (count == 1 || spacing >= ticks.Labels.Max(l => BitmapFont.MeasureWidth(l, TextScale)) + 3 * Margin)
                return ticks;
        }
    }

    private PixelPoint[] ToPixels(IReadOnlyList<double> xs, IReadOnlyList<double> ys) =>
        xs.Select((x, i) => new PixelPoint(PixelX(x), PixelY(ys[i]))).ToArray();

    /// <summary>The title over the plot; a long output path drops to the small font, then loses its head to "...".</summary>
    private static TextElement FitTitle(string title, double centreX)
    {
        int room = Width - 2 * Margin;
        int scale = BitmapFont.MeasureWidth(title, TextScale) <= room ? TextScale : 1;
        int fits = (room / scale + 1) / BitmapFont.Advance;
        if (title.Length > fits) title = "..." + title[^(fits - 3)..];
        return new TextElement(title, Width / 2.0, Margin + Cap, TextAnchor.Middle, scale);
    }

    private static IEnumerable<BoxElement> Frame(int x, int y, int width, int height, Rgb colour) =>
    [
        new(x, y, width, 1, colour), new(x, y + height - 1, width, 1, colour),
        new(x, y, 1, height, colour), new(x + width - 1, y, 1, height, colour),
    ];

    /// <summary>
    /// matplotlib's legend: a white panel at 0.8 opacity with a light grey edge, a line sample and a label per
    /// curve, in the first corner (upper right, upper left, lower left, lower right: the order of loc="best")
    /// that the fewest curve segments cross.
    /// </summary>
    private IEnumerable<FigureElement> Legend(LineElement raw, LineElement smoothed)
    {
        const int sample = 28, rowPitch = 22;
        int width = Margin + sample + Margin + BitmapFont.MeasureWidth("smoothed", TextScale) + Margin;
        int height = Margin + Cap + rowPitch + Margin;
        (int X, int Y)[] corners =
        [
            (Right - Margin - width, Top + Margin), (Left + Margin, Top + Margin),
            (Left + Margin, Bottom - Margin - height), (Right - Margin - width, Bottom - Margin - height),
        ];
        var (x, y) = corners.MinBy(c => Crossings(raw.Points, c.X, c.Y, width, height) + Crossings(smoothed.Points, c.X, c.Y, width, height));

        var elements = new List<FigureElement> { new BoxElement(x, y, width, height, Rgb.White, 0.8) };
        elements.AddRange(Frame(x, y, width, height, LegendEdge));
        foreach (var (label, line, row) in new[] { ("original", raw, 0), ("smoothed", smoothed, 1) })
        {
            double middle = y + Margin + Cap / 2.0 + row * rowPitch;
            elements.Add(line with { Points = [new(x + Margin, middle), new(x + Margin + sample, middle)] });
            elements.Add(new TextElement(label, x + 2 * Margin + sample, middle + Cap / 2.0, TextAnchor.Start, TextScale));
        }
        return elements;
    }

    private static int Crossings(IReadOnlyList<PixelPoint> points, double x, double y, double width, double height)
    {
        int count = 0;
        for (int i = 0; i < Math.Max(points.Count - 1, 1); i++)
            if (SegmentMeetsBox(points[i], points[Math.Min(i + 1, points.Count - 1)], x, y, x + width, y + height)) count++;
        return count;
    }

    /// <summary>Liang-Barsky clipping: whether any part of segment ab lies inside the box.</summary>
    private static bool SegmentMeetsBox(PixelPoint a, PixelPoint b, double x0, double y0, double x1, double y1)
    {
        double dx = b.X - a.X, dy = b.Y - a.Y, enter = 0, leave = 1;
        foreach (var (p, q) in new[] { (-dx, a.X - x0), (dx, x1 - a.X), (-dy, a.Y - y0), (dy, y1 - a.Y) })
        {
            if (p == 0)
            {
                if (q < 0) return false;
                continue;
            }
            double t = q / p;
            if (p < 0) enter = Math.Max(enter, t);
            else leave = Math.Min(leave, t);
            if (enter > leave) return false;
        }
        return true;
    }
}
