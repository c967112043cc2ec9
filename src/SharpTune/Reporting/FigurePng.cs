namespace SharpTune.Reporting;

/// <summary>Rasterises a <see cref="LossFigure"/> and encodes it as PNG.</summary>
internal static class FigurePng
{
    public static RasterCanvas Render(LossFigure figure)
    {
        var canvas = new RasterCanvas(LossFigure.Width, LossFigure.Height, Rgb.White);
        foreach (FigureElement element in figure.Elements)
            switch (element)
            {
                case BoxElement box:
                    canvas.FillBox(box.X, box.Y, box.Width, box.Height, box.Colour, box.Opacity);
                    break;
                case LineElement line:
                    canvas.StrokePolyline(line.Points, line.Width, line.Colour, line.Opacity);
                    break;
                case TextElement text:
                    DrawText(canvas, text);
                    break;
            }
        return canvas;
    }

    public static void Write(Stream output, LossFigure figure)
    {
        RasterCanvas canvas = Render(figure);
        PngEncoder.Write(output, canvas.Width, canvas.Height, canvas.Pixels);
    }

    private static void DrawText(RasterCanvas canvas, TextElement text)
    {
        int length = BitmapFont.MeasureWidth(text.Text, text.Scale);
        double before = text.Anchor switch { TextAnchor.Start => 0, TextAnchor.Middle => length / 2.0, _ => length };
        int capTop = BitmapFont.CapHeight * text.Scale;
        if (text.Upwards)
            canvas.DrawTextUpwards(text.Text, (int)Math.Round(text.X) - capTop, (int)Math.Round(text.Y + before), text.Scale, Rgb.Black);
        else
            canvas.DrawText(text.Text, (int)Math.Round(text.X - before), (int)Math.Round(text.Y) - capTop, text.Scale, Rgb.Black);
    }
}
