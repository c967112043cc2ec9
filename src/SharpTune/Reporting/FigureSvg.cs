using System.Globalization;
using System.Text;

namespace SharpTune.Reporting;

/// <summary>Writes a <see cref="LossFigure"/> as SVG: the same boxes, polylines and text as the PNG, as vectors.</summary>
internal static class FigureSvg
{
    // Sized so capitals are about as tall as the bitmap font's (cap height ≈ 0.7 em).
    private const double FontSizePerScale = 10;

    public static string Render(LossFigure figure)
    {
        var svg = new StringBuilder();
        svg.Append($"""<svg xmlns="http://www.w3.org/2000/svg" width="{LossFigure.Width}" height="{LossFigure.Height}" viewBox="0 0 {LossFigure.Width} {LossFigure.Height}">""").Append('\n');
        foreach (FigureElement element in figure.Elements)
        {
            switch (element)
            {
                case BoxElement box:
                    svg.Append($"""<rect x="{box.X}" y="{box.Y}" width="{box.Width}" height="{box.Height}" fill="{box.Colour.Hex}"{Opacity("fill-opacity", box.Opacity)}/>""");
                    break;
                case LineElement line:
                    string points = string.Join(' ', line.Points.Select(p => $"{Number(p.X)},{Number(p.Y)}"));
                    svg.Append($"""<polyline points="{points}" fill="none" stroke="{line.Colour.Hex}"{Opacity("stroke-opacity", line.Opacity)} stroke-width="{Number(line.Width)}" stroke-linejoin="round" stroke-linecap="round"/>""");
                    break;
                case TextElement text:
                    string anchor = text.Anchor switch { TextAnchor.Start => "start", TextAnchor.Middle => "middle", _ => "end" };
                    string turn = text.Upwards ? $" transform=\"rotate(-90 {Number(text.X)} {Number(text.Y)})\"" : "";
                    svg.Append($"""<text x="{Number(text.X)}" y="{Number(text.Y)}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif" font-size="{Number(text.Scale * FontSizePerScale)}" text-anchor="{anchor}"{turn}>{Escape(text.Text)}</text>""");
                    break;
            }
            svg.Append('\n');
        }
        return svg.Append("</svg>\n").ToString();
    }

    private static string Opacity(string attribute, double opacity) => opacity < 1 ? $" {attribute}=\"{Number(opacity)}\"" : "";

    private static string Number(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>Escapes markup characters; control characters, which XML 1.0 cannot hold, become '?'.</summary>
    private static string Escape(string text)
    {
        var escaped = new StringBuilder(text.Length);
        foreach (char c in text)
            escaped.Append(c switch
            {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                _ when c < ' ' => "?",
                _ => c.ToString(),
            });
        return escaped.ToString();
    }
}
