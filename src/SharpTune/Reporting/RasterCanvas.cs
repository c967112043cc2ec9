namespace SharpTune.Reporting;

/// <summary>An 8-bit colour.</summary>
internal readonly record struct Rgb(byte R, byte G, byte B)
{
    public static readonly Rgb White = new(255, 255, 255);
    public static readonly Rgb Black = new(0, 0, 0);

    public string Hex => $"#{R:x2}{G:x2}{B:x2}";
}

/// <summary>A point in pixel coordinates: x to the right, y down, (0, 0) the top-left corner of the top-left pixel.</summary>
internal readonly record struct PixelPoint(double X, double Y);

/// <summary>
/// An RGB raster (rows top to bottom, 3 bytes per pixel) with the few drawing operations a line plot needs: filled
/// boxes, anti-aliased polylines and bitmap-font text. Everything drawn outside the canvas is clipped.
/// </summary>
internal sealed class RasterCanvas
{
    public int Width { get; }
    public int Height { get; }
    public byte[] Pixels { get; }

    public RasterCanvas(int width, int height, Rgb background)
    {
        Width = width;
        Height = height;
        Pixels = new byte[width * height * 3];
        FillBox(0, 0, width, height, background);
    }

    public Rgb this[int x, int y] => new(Pixels[(y * Width + x) * 3], Pixels[(y * Width + x) * 3 + 1], Pixels[(y * Width + x) * 3 + 2]);

    /// <summary>Blends <paramref name="colour"/> at <paramref name="opacity"/> over the pixel-aligned box.</summary>
    public void FillBox(int x, int y, int width, int height, Rgb colour, double opacity = 1)
    {
        for (int py = Math.Max(y, 0); py < Math.Min(y + height, Height); py++)
            for (int px = Math.Max(x, 0); px < Math.Min(x + width, Width); px++)
                Blend(px, py, colour, opacity);
    }

    /// <summary>
    /// Strokes a polyline <paramref name="width"/> pixels wide with round joins and caps. Coverage is the
    /// distance from each pixel centre to the nearest segment, so edges are anti-aliased; it is accumulated as a
    /// maximum over all segments and blended once, so a translucent line does not darken where segments meet.
    /// </summary>
    public void StrokePolyline(IReadOnlyList<PixelPoint> points, double width, Rgb colour, double opacity)
    {
        if (points.Count == 0) return;
        var coverage = new float[Width * Height];
        double reach = width / 2 + 0.5;
        int minX = Width, minY = Height, maxX = -1, maxY = -1;
        for (int i = 0; i < Math.Max(points.Count - 1, 1); i++)
        {
            PixelPoint a = points[i], b = points[Math.Min(i + 1, points.Count - 1)];
            int x0 = Math.Max(0, (int)Math.Floor(Math.Min(a.X, b.X) - reach));
            int x1 = Math.Min(Width - 1, (int)Math.Ceiling(Math.Max(a.X, b.X) + reach));
            int y0 = Math.Max(0, (int)Math.Floor(Math.Min(a.Y, b.Y) - reach));
            int y1 = Math.Min(Height - 1, (int)Math.Ceiling(Math.Max(a.Y, b.Y) + reach));
            for (int y = y0; y <= y1; y++)
                for (int x = x0; x <= x1; x++)
                {
                    double cover = Math.Clamp(reach - DistanceToSegment(x + 0.5, y + 0.5, a, b), 0, 1);
                    ref float cell = ref coverage[y * Width + x];
                    cell = Math.Max(cell, (float)cover);
                }
            (minX, minY, maxX, maxY) = (Math.Min(minX, x0), Math.Min(minY, y0), Math.Max(maxX, x1), Math.Max(maxY, y1));
        }
        for (int y = minY; y <= maxY; y++)
            for (int x = minX; x <= maxX; x++)
                if (coverage[y * Width + x] > 0) Blend(x, y, colour, opacity * coverage[y * Width + x]);
    }

    /// <summary>Draws <paramref name="text"/> left to right with its cell's top-left corner at (x, top).</summary>
    public void DrawText(string text, int x, int top, int scale, Rgb colour) =>
        DrawGlyphs(text, scale, (u, v) => FillBox(x + u, top + v, scale, scale, colour));

    /// <summary>Draws <paramref name="text"/> reading bottom to top (turned 90° anticlockwise); the cell's top
    /// edge becomes its left edge at <paramref name="left"/>, and the text starts at <paramref name="bottom"/>.</summary>
    public void DrawTextUpwards(string text, int left, int bottom, int scale, Rgb colour) =>
        DrawGlyphs(text, scale, (u, v) => FillBox(left + v, bottom - u - scale, scale, scale, colour));

    /// <summary>Calls <paramref name="ink"/> with the (along, across) offset of every inked font pixel.</summary>
    private static void DrawGlyphs(string text, int scale, Action<int, int> ink)
    {
        for (int i = 0; i < text.Length; i++)
            for (int row = 0; row < BitmapFont.CellHeight; row++)
                for (int column = 0; column < BitmapFont.GlyphWidth; column++)
                    if (BitmapFont.IsInk(text[i], row, column))
                        ink((i * BitmapFont.Advance + column) * scale, row * scale);
    }

    private void Blend(int x, int y, Rgb colour, double alpha)
    {
        int at = (y * Width + x) * 3;
        Pixels[at] = Mix(Pixels[at], colour.R, alpha);
        Pixels[at + 1] = Mix(Pixels[at + 1], colour.G, alpha);
        Pixels[at + 2] = Mix(Pixels[at + 2], colour.B, alpha);
    }

    private static byte Mix(byte under, byte over, double alpha) => (byte)Math.Round(under + (over - under) * alpha);

    private static double DistanceToSegment(double x, double y, PixelPoint a, PixelPoint b)
    {
        double dx = b.X - a.X, dy = b.Y - a.Y, lengthSquared = dx * dx + dy * dy;
        double t = lengthSquared == 0 ? 0 : Math.Clamp(((x - a.X) * dx + (y - a.Y) * dy) / lengthSquared, 0, 1);
        double ex = a.X + t * dx - x, ey = a.Y + t * dy - y;
        return Math.Sqrt(ex * ex + ey * ey);
    }
}
