using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Data.Cleaning;

/// <summary>One bar of a histogram: the values in [<see cref="From"/>, <see cref="To"/>).</summary>
public sealed record HistogramBin(long From, long To, int Count);

/// <summary>Count, median, mean and extremes of a list of lengths.</summary>
public sealed record LengthSummary(int Count, long Min, double Median, double Mean, long Max)
{
    public static LengthSummary Of(IReadOnlyList<long> values)
    {
        if (values.Count == 0) return new LengthSummary(0, 0, 0, 0, 0);
        var sorted = values.Order().ToArray();
        int n = sorted.Length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
        return new LengthSummary(n, sorted[0], median, sorted.Average(v => (double)v), sorted[^1]);
    }

    public override string ToString() => Count == 0 ? "none"
        : $"min {Min}, median {Number(Median)}, mean {Number(Mean)}, max {Max}";

    private static string Number(double value) => value.ToString("0.#", CultureInfo.InvariantCulture);
}

/// <summary>
/// The terminal text, the self-contained HTML page (inline SVG bar charts, no scripts, nothing fetched) and the JSON
/// summary of a <see cref="DatasetInspection"/>.
/// </summary>
public sealed class InspectionReport(DatasetInspection inspection)
{
    public const int HistogramBins = 12;
    private const int TextBarWidth = 40;

    private IReadOnlyList<RecordMeasure> Usable => inspection.Records.Where(r => r.Problem is null).ToList();

    /// <summary>Per-record lengths of the usable records: tokens when counted, else characters.</summary>
    private (string Unit, List<long> Values) MainLengths()
    {
        var usable = Usable;
        return inspection.Tokens is null
            ? ("characters", usable.Select(r => (long)r.Chars).ToList())
            : ("tokens", usable.Select(r => (long)r.Tokens!.Value).ToList());
    }

    public IReadOnlyDictionary<string, int> Languages() =>
        inspection.Records.GroupBy(r => r.Language).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count());

    /// <summary>Equal-width bins of a round width (1, 2 or 5 × 10^k) from 0 that cover every value, at most <paramref name="maxBins"/>.</summary>
    public static IReadOnlyList<HistogramBin> Histogram(IReadOnlyList<long> values, int maxBins = HistogramBins)
    {
        if (values.Count == 0) return [];
        long max = values.Max();
        long width = 1;
        for (long scale = 1; ; scale *= 10)
        {
            width = new[] { scale, 2 * scale, 5 * scale }.FirstOrDefault(w => (max / w) + 1 <= maxBins);
            if (width != 0) break;
        }
        int bins = (int)(max / width) + 1;
        var counts = new int[bins];
        foreach (long v in values) counts[v / width]++;
        return counts.Select((c, i) => new HistogramBin(i * width, (i + 1) * width, c)).ToList();
    }

    public string ToText()
    {
        var t = new StringBuilder();
        var d = inspection;
        int total = d.Records.Count, usable = total - d.Problems.Count;
        t.Append("dataset: ").Append(d.Source).Append('\n');
        t.Append($"records: {total} ({usable} usable for training, {d.Problems.Count} not)\n");
        t.Append($"format: {d.Format.Name} ({d.Format.Evidence})\n");
        t.Append("fields: ").Append(string.Join("; ", d.Fields.Select(f => $"{f.Field} {f.Missing} missing, {f.Empty} empty"))).Append('\n');
        t.Append($"exact duplicates: {d.ExactDuplicates} (records whose normalised text an earlier record has, as data dedup removes them)\n");
        t.Append("languages (by script): ").Append(string.Join(", ", Languages().Select(l => $"{l.Key} {l.Value}"))).Append('\n');
        var records = Usable;
        t.Append("characters per record: prompt ").Append(LengthSummary.Of(records.Select(r => (long)r.PromptChars).ToList()))
         .Append("; answer ").Append(LengthSummary.Of(records.Select(r => (long)r.AnswerChars).ToList())).Append('\n');
        if (d.Tokens is { } tokens)
        {
            t.Append($"tokens per record (template {tokens.Template.Name}): prompt ").Append(LengthSummary.Of(records.Select(r => (long)r.PromptTokens!.Value).ToList()))
             .Append("; trained ").Append(LengthSummary.Of(records.Select(r => (long)r.TrainedTokens!.Value).ToList()))
             .Append("; total ").Append(LengthSummary.Of(records.Select(r => (long)r.Tokens!.Value).ToList())).Append('\n');
            t.Append(CutText()).Append('\n');
        }
        var (unit, values) = MainLengths();
        t.Append($"histogram of {unit} per record:\n");
        var bins = Histogram(values);
        int most = bins.Count == 0 ? 0 : bins.Max(b => b.Count);
        int labelWidth = bins.Count == 0 ? 0 : $"{bins[^1].From}–{bins[^1].To}".Length;
        foreach (var bin in bins)
        {
            int bar = most == 0 ? 0 : (int)Math.Round((double)bin.Count / most * TextBarWidth);
            t.Append($"  {$"{bin.From}–{bin.To}".PadLeft(labelWidth)} │{new string('█', bar)} {bin.Count}\n");
        }
        foreach (string problem in d.Problems.Take(DatasetInspector.MaxProblemsListed))
            t.Append("not usable: ").Append(problem).Append('\n');
        if (d.Problems.Count > DatasetInspector.MaxProblemsListed)
            t.Append($"… and {d.Problems.Count - DatasetInspector.MaxProblemsListed} more not usable\n");
        return t.ToString();
    }

    private string CutText()
    {
        var records = Usable;
        int cut = records.Count(r => r.TokensLost > 0);
        long lost = records.Sum(r => (long)r.TokensLost!.Value), trainedLost = records.Sum(r => (long)r.TrainedTokensLost!.Value);
        double share = records.Count == 0 ? 0 : 100.0 * cut / records.Count;
        return $"cut at cutoff_len {inspection.Tokens!.CutoffLen}: {cut} record{(cut == 1 ? "" : "s")} ({share.ToString("0.#", CultureInfo.InvariantCulture)}%), {lost} tokens lost ({trainedLost} of them trained)";
    }

    /// <summary>Writes the HTML page atomically.</summary>
    public void WriteHtml(string path) => AtomicFile.WriteText(path, ToHtml());

    /// <summary>A single HTML page, well-formed XML too (so it parses as XHTML), with its charts as inline SVG.</summary>
    public string ToHtml()
    {
        var d = inspection;
        var h = new StringBuilder();
        h.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>").Append(Html($"Dataset inspection: {d.Source}")).Append("</title>\n<style>\n")
         .Append("body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1000px;padding:0 1rem;color:#1d2330}\n")
         .Append("table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccd;padding:.35rem .6rem;text-align:left;vertical-align:top}\n")
         .Append("td.n{text-align:right;font-variant-numeric:tabular-nums}\nfigure{margin:1.5rem 0}figcaption{font-weight:600;margin-bottom:.4rem}\n")
         .Append("</style>\n</head>\n<body>\n<h1>").Append(Html(d.Source)).Append("</h1>\n<table>\n");
        void Row(string label, string value) => h.Append("<tr><th>").Append(Html(label)).Append("</th><td>").Append(Html(value)).Append("</td></tr>\n");
        Row("records", $"{d.Records.Count} ({d.Records.Count - d.Problems.Count} usable for training, {d.Problems.Count} not)");
        Row("format", $"{d.Format.Name} ({d.Format.Evidence})");
        Row("exact duplicates", d.ExactDuplicates.ToString(CultureInfo.InvariantCulture));
        var records = Usable;
        Row("characters per record, prompt", LengthSummary.Of(records.Select(r => (long)r.PromptChars).ToList()).ToString());
        Row("characters per record, answer", LengthSummary.Of(records.Select(r => (long)r.AnswerChars).ToList()).ToString());
        if (d.Tokens is { } tokens)
        {
            Row($"prompt tokens (template {tokens.Template.Name})", LengthSummary.Of(records.Select(r => (long)r.PromptTokens!.Value).ToList()).ToString());
            Row("trained tokens", LengthSummary.Of(records.Select(r => (long)r.TrainedTokens!.Value).ToList()).ToString());
            Row("cut", CutText());
        }
        h.Append("</table>\n<h2>Fields</h2>\n<table>\n<tr><th>field</th><th>missing</th><th>empty</th></tr>\n");
        foreach (var f in d.Fields)
            h.Append("<tr><td>").Append(Html(f.Field)).Append("</td><td class=\"n\">").Append(f.Missing).Append("</td><td class=\"n\">").Append(f.Empty).Append("</td></tr>\n");
        h.Append("</table>\n");

        var chars = Histogram(records.Select(r => (long)r.Chars).ToList());
        h.Append(Figure("Characters per record", chars.Select(b => ($"{b.From}–{b.To}", b.Count)).ToList()));
        if (d.Tokens is not null)
        {
            h.Append(Figure("Tokens per record (prompt + trained)", Histogram(records.Select(r => (long)r.Tokens!.Value).ToList()).Select(b => ($"{b.From}–{b.To}", b.Count)).ToList()));
            h.Append(Figure("Trained tokens per record", Histogram(records.Select(r => (long)r.TrainedTokens!.Value).ToList()).Select(b => ($"{b.From}–{b.To}", b.Count)).ToList()));
        }
        h.Append(Figure("Languages (by script)", Languages().Select(l => (l.Key, l.Value)).ToList()));
        if (d.Problems.Count > 0)
        {
            h.Append("<h2>Not usable for training</h2>\n<ul>\n");
            foreach (string problem in d.Problems.Take(DatasetInspector.MaxProblemsListed)) h.Append("<li>").Append(Html(problem)).Append("</li>\n");
            if (d.Problems.Count > DatasetInspector.MaxProblemsListed) h.Append($"<li>… and {d.Problems.Count - DatasetInspector.MaxProblemsListed} more</li>\n");
            h.Append("</ul>\n");
        }
        return h.Append("</body>\n</html>\n").ToString();
    }

    /// <summary>A horizontal bar chart as inline SVG: one labelled bar per item, its count at the end.</summary>
    private static string Figure(string title, IReadOnlyList<(string Label, int Count)> bars)
    {
        const int rowHeight = 22, labelWidth = 130, barWidth = 520, countWidth = 70;
        int most = bars.Count == 0 ? 0 : bars.Max(b => b.Count);
        int height = Math.Max(1, bars.Count) * rowHeight + 8;
        var s = new StringBuilder();
        s.Append("<figure>\n<figcaption>").Append(Html(title)).Append("</figcaption>\n")
         .Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{labelWidth + barWidth + countWidth}\" height=\"{height}\" role=\"img\" aria-label=\"{Html(title)}\">\n");
        for (int i = 0; i < bars.Count; i++)
        {
            var (label, count) = bars[i];
            int y = 4 + i * rowHeight;
            double width = most == 0 ? 0 : (double)count / most * barWidth;
            s.Append($"<text x=\"{labelWidth - 8}\" y=\"{y + 15}\" text-anchor=\"end\" font-size=\"12\">{Html(label)}</text>")
             .Append($"<rect x=\"{labelWidth}\" y=\"{y + 2}\" width=\"{width.ToString("0.##", CultureInfo.InvariantCulture)}\" height=\"{rowHeight - 6}\" fill=\"#1f77b4\"><title>{Html($"{label}: {count}")}</title></rect>")
             .Append($"<text x=\"{labelWidth + (int)Math.Ceiling(width) + 6}\" y=\"{y + 15}\" font-size=\"12\">{count}</text>\n");
        }
        return s.Append("</svg>\n</figure>\n").ToString();
    }

    /// <summary>The numbers of the report as one JSON object, for scripts.</summary>
    public string ToJson()
    {
        var d = inspection;
        var records = Usable;
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteString("dataset", d.Source);
            json.WriteNumber("records", d.Records.Count);
            json.WriteNumber("usable", records.Count);
            json.WriteString("format", d.Format.Name);
            json.WriteString("format_evidence", d.Format.Evidence);
            json.WriteStartObject("fields");
            foreach (var f in d.Fields)
            {
                json.WriteStartObject(f.Field);
                json.WriteNumber("missing", f.Missing);
                json.WriteNumber("empty", f.Empty);
                json.WriteEndObject();
            }
            json.WriteEndObject();
            json.WriteNumber("exact_duplicates", d.ExactDuplicates);
            json.WriteStartObject("languages");
            foreach (var (language, count) in Languages()) json.WriteNumber(language, count);
            json.WriteEndObject();
            Summary(json, "prompt_chars", records.Select(r => (long)r.PromptChars).ToList());
            Summary(json, "answer_chars", records.Select(r => (long)r.AnswerChars).ToList());
            if (d.Tokens is { } tokens)
            {
                json.WriteString("template", tokens.Template.Name);
                Summary(json, "prompt_tokens", records.Select(r => (long)r.PromptTokens!.Value).ToList());
                Summary(json, "trained_tokens", records.Select(r => (long)r.TrainedTokens!.Value).ToList());
                json.WriteNumber("cutoff_len", tokens.CutoffLen);
                json.WriteNumber("records_cut", records.Count(r => r.TokensLost > 0));
                json.WriteNumber("tokens_lost", records.Sum(r => (long)r.TokensLost!.Value));
                json.WriteNumber("trained_tokens_lost", records.Sum(r => (long)r.TrainedTokensLost!.Value));
            }
            json.WriteStartArray("not_usable");
            foreach (string problem in d.Problems) json.WriteStringValue(problem);
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    private static void Summary(Utf8JsonWriter json, string name, IReadOnlyList<long> values)
    {
        var s = LengthSummary.Of(values);
        json.WriteStartObject(name);
        json.WriteNumber("total", values.Sum());
        json.WriteNumber("min", s.Min);
        json.WriteNumber("median", s.Median);
        json.WriteNumber("mean", Math.Round(s.Mean, 3));
        json.WriteNumber("max", s.Max);
        json.WriteEndObject();
    }

    private static string Html(string text) => WebUtility.HtmlEncode(text);
}
