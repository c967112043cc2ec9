using System.Globalization;
using System.Net;
using System.Text;
using SharpTune.Evaluation.Metrics;
using SharpTune.Inference;
using SharpTune.IO;

namespace SharpTune.Evaluation.Comparison;

/// <summary>
/// The side-by-side result of a comparison: the setup, a summary per model (answer lengths, BLEU-4/ROUGE-L against
/// the references, speed) and every question with the reference and each model's answer. Written as compare.md and
/// as compare.html, a page with its styles inline that opens anywhere without a network or a script. Texts are shown
/// without trailing whitespace (a template's line break after the answer is part of the reference); scores use them whole.
/// </summary>
/// <param name="Setup">Label/value lines describing the run (models, template, decoding, question source).</param>
public sealed record ComparisonReport(IReadOnlyList<KeyValuePair<string, string>> Setup,
    IReadOnlyList<ComparisonQuestion> Questions, IReadOnlyList<ComparisonColumn> Columns)
{
    public const string MarkdownFileName = "compare.md";
    public const string HtmlFileName = "compare.html";

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    private bool HasReferences => Questions.Any(q => q.Reference is not null);

    /// <summary>Writes compare.md and compare.html into <paramref name="outputDir"/> (each atomically) and returns their paths.</summary>
    public (string Markdown, string Html) Write(string outputDir)
    {
        Directory.CreateDirectory(outputDir);
        string markdown = Path.Combine(outputDir, MarkdownFileName);
        string html = Path.Combine(outputDir, HtmlFileName);
        AtomicFile.WriteText(markdown, ToMarkdown());
        AtomicFile.WriteText(html, ToHtml());
        return (markdown, html);
    }

    /// <summary>One row per model: what the summary tables show.</summary>
    private sealed record SummaryRow(string Name, string Source, double MeanTokens, double MeanCharacters, int CutOff,
        double? Bleu4, double? RougeL, double TokensPerSecond);

    private List<SummaryRow> Summary() => Columns.Select(c =>
    {
        var mean = c.MeanScores();
        double seconds = c.Elapsed.TotalSeconds;
        return new SummaryRow(c.Name, c.AdapterDirectory ?? "base model",
            c.Answers.Average(a => a.Tokens), c.Answers.Average(a => (double)a.Text.Length),
            c.Answers.Count(a => a.FinishReason == FinishReason.Length),
            mean?[GenerationMetrics.Bleu4Key], mean?[GenerationMetrics.RougeLKey],
            seconds > 0 ? c.GeneratedTokens / seconds : 0);
    }).ToList();

    public string ToMarkdown()
    {
        var md = new StringBuilder("# Before and after: the same questions, every model\n\n");
        foreach (var (label, value) in Setup) md.Append("- **").Append(Cell(label)).Append("**: ").Append(Cell(value)).Append('\n');
        md.Append("\n## Summary\n\n");
        md.Append(HasReferences
            ? "| Model | Weights | Mean tokens | Mean characters | Cut at max_new_tokens | BLEU-4 | ROUGE-L | Generated tok/s |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
            : "| Model | Weights | Mean tokens | Mean characters | Cut at max_new_tokens | Generated tok/s |\n| --- | --- | ---: | ---: | ---: | ---: |\n");
        foreach (var row in Summary())
        {
            md.Append("| ").Append(Cell(row.Name)).Append(" | ").Append(Cell(row.Source)).Append(" | ")
              .Append(Number(row.MeanTokens, 1)).Append(" | ").Append(Number(row.MeanCharacters, 1)).Append(" | ").Append(row.CutOff).Append(" | ");
            if (HasReferences) md.Append(Number(row.Bleu4, 2)).Append(" | ").Append(Number(row.RougeL, 2)).Append(" | ");
            md.Append(Number(row.TokensPerSecond, 1)).Append(" |\n");
        }
        if (HasReferences)
            md.Append("\nBLEU-4 and ROUGE-L are averaged over the questions with a reference answer, scored as LLaMA-Factory's predict_with_generate scores them.\n");

        md.Append("\n## Answers\n");
        for (int q = 0; q < Questions.Count; q++)
        {
            var question = Questions[q];
            md.Append("\n### ").Append(q + 1).Append(". ").Append(Cell(question.Question)).Append("\n\n");
            md.Append("| | Answer | Tokens | BLEU-4 | ROUGE-L |\n| --- | --- | ---: | ---: | ---: |\n");
            if (question.Reference is string reference)
                md.Append("| *reference* | ").Append(Cell(reference.TrimEnd())).Append(" | | | |\n");
            foreach (var column in Columns)
            {
                var answer = column.Answers[q];
                md.Append("| **").Append(Cell(column.Name)).Append("** | ").Append(answer.Text.Trim().Length == 0 ? "*(empty)*" : Cell(answer.Text.TrimEnd())).Append(" | ")
                  .Append(answer.Tokens).Append(answer.FinishReason == FinishReason.Length ? " (cut)" : "").Append(" | ")
                  .Append(Number(answer.Scores?.Bleu4, 2)).Append(" | ").Append(Number(answer.Scores?.RougeL, 2)).Append(" |\n");
            }
        }
        return md.ToString();
    }

    public string ToHtml()
    {
        var h = new StringBuilder();
        h.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>SharpTune comparison</title>\n<style>\n")
         .Append("body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1400px;padding:0 1rem;color:#1d2330}\n")
         .Append("table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccd;padding:.35rem .6rem;text-align:left;vertical-align:top}\n")
         .Append("td.n{text-align:right;font-variant-numeric:tabular-nums}\n")
         .Append("section{border:1px solid #ccd;border-radius:6px;margin:1.2rem 0;padding:.8rem 1rem}\n")
         .Append("section h3{margin:.2rem 0 .8rem;white-space:pre-wrap}\n")
         .Append(".answers{display:grid;gap:.8rem;grid-template-columns:repeat(auto-fit,minmax(16rem,1fr))}\n")
         .Append(".answer{background:#f6f7fb;border-radius:4px;padding:.6rem}.answer.reference{background:#eef8ee}\n")
         .Append(".answer h4{margin:0 0 .4rem;font-size:.95rem}.answer .text{white-space:pre-wrap;overflow-wrap:anywhere}\n")
         .Append(".meta{color:#5a6172;font-size:.8rem;margin-top:.4rem}\n</style>\n</head>\n<body>\n")
         .Append("<h1>Before and after: the same questions, every model</h1>\n<table>\n");
        foreach (var (label, value) in Setup)
            h.Append("<tr><th>").Append(Html(label)).Append("</th><td>").Append(Html(value)).Append("</td></tr>\n");
        h.Append("</table>\n<h2>Summary</h2>\n<table>\n<tr><th>Model</th><th>Weights</th><th>Mean tokens</th><th>Mean characters</th><th>Cut at max_new_tokens</th>");
        if (HasReferences) h.Append("<th>BLEU-4</th><th>ROUGE-L</th>");
        h.Append("<th>Generated tok/s</th></tr>\n");
        foreach (var row in Summary())
        {
            h.Append("<tr><td>").Append(Html(row.Name)).Append("</td><td>").Append(Html(row.Source)).Append("</td><td class=\"n\">")
             .Append(Number(row.MeanTokens, 1)).Append("</td><td class=\"n\">").Append(Number(row.MeanCharacters, 1)).Append("</td><td class=\"n\">")
             .Append(row.CutOff).Append("</td>");
            if (HasReferences)
                h.Append("<td class=\"n\">").Append(Number(row.Bleu4, 2)).Append("</td><td class=\"n\">").Append(Number(row.RougeL, 2)).Append("</td>");
            h.Append("<td class=\"n\">").Append(Number(row.TokensPerSecond, 1)).Append("</td></tr>\n");
        }
        h.Append("</table>\n");
        if (HasReferences)
            h.Append("<p class=\"meta\">BLEU-4 and ROUGE-L are averaged over the questions with a reference answer, scored as LLaMA-Factory's predict_with_generate scores them.</p>\n");
        h.Append("<h2>Answers</h2>\n");
        for (int q = 0; q < Questions.Count; q++)
        {
            var question = Questions[q];
            h.Append("<section>\n<h3>").Append(q + 1).Append(". ").Append(Html(question.Question)).Append("</h3>\n<div class=\"answers\">\n");
            if (question.Reference is string reference)
                h.Append("<div class=\"answer reference\"><h4>reference</h4><div class=\"text\">").Append(Html(reference.TrimEnd())).Append("</div></div>\n");
            foreach (var column in Columns)
            {
                var answer = column.Answers[q];
                h.Append("<div class=\"answer\"><h4>").Append(Html(column.Name)).Append("</h4><div class=\"text\">").Append(Html(answer.Text.TrimEnd()))
                 .Append("</div><div class=\"meta\">").Append(answer.Tokens).Append(" tokens, ").Append(answer.Text.Length).Append(" characters")
                 .Append(answer.FinishReason == FinishReason.Length ? ", cut at max_new_tokens" : "");
                if (answer.Scores is GenerationScores s)
                    h.Append(" · BLEU-4 ").Append(Number(s.Bleu4, 2)).Append(" · ROUGE-L ").Append(Number(s.RougeL, 2));
                h.Append("</div></div>\n");
            }
            h.Append("</div>\n</section>\n");
        }
        h.Append("</body>\n</html>\n");
        return h.ToString();
    }

    private static string Number(double? value, int decimals) =>
        value is double v ? v.ToString("F" + decimals, Invariant) : "";

    private static string Html(string text) => WebUtility.HtmlEncode(text);

    /// <summary>
    /// Text inside a Markdown table cell: Markdown's punctuation is backslash-escaped so an answer shows as the
    /// model wrote it (no stray emphasis, links, HTML or column breaks), and line breaks become &lt;br&gt;.
    /// </summary>
    private static string Cell(string text)
    {
        var cell = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            switch (c)
            {
                case '\r': break;
                case '\n': cell.Append("<br>"); break;
                case '&': cell.Append("&amp;"); break;
                case '\\' or '`' or '*' or '_' or '[' or ']' or '<' or '>' or '|' or '#' or '~' or '!':
                    cell.Append('\\').Append(c);
                    break;
                default: cell.Append(c); break;
            }
        }
        return cell.ToString();
    }
}
