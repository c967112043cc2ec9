using System.Text.Json;

namespace SharpTune.Data.Cleaning;

/// <summary>
/// `sharptune data clean`: the recipe's rewriting rules change the affected string values (everything else of the
/// record byte for byte as given), then its filters remove records, judging the rewritten text. Records are cleaned
/// on all cores; the report lists each changed record with the rules that changed which fields, and each removed one
/// with the rule and the value it measured.
/// </summary>
public static class DatasetCleaner
{
    private sealed record Outcome(byte[] Json, List<(string Field, string Rule)> Changes, IRecordFilterRule? RemovedBy, string? Measured);

    /// <summary>Cleans <paramref name="inputPath"/> streamed (<see cref="StreamedStep"/>), writing to <paramref name="targets"/>.</summary>
    public static StepSummary Run(string inputPath, CleaningRecipe recipe, StepTargets targets)
    {
        var recordText = new RecordText(recipe.Fields);
        // token_num reads records in the file's format, detected once for the whole file as `data inspect` does.
        var filters = recipe.Filters.Select(f => f is TokenNumRule tokens ? tokens.ForFile(inputPath) : f).ToList();
        return StreamedStep.Run(inputPath, targets, record => Clean(record.Json, recipe, filters, recordText), (record, outcome, report) =>
        {
            var (json, changes, removedBy, measured) = outcome;
            if (removedBy is not null)
            {
                report.Count(removedBy.Name);
                report.Add(record, "removed", removedBy.Name, removedBy.Description, details => details.WriteString("measured", measured));
                return null;
            }
            if (changes.Count == 0) return json;
            foreach (var (_, rule) in changes) report.Count(rule);
            report.Add(record, "changed", "normalised", string.Join("; ", changes.Select(c => c.Rule).Distinct()
                .Select(name => recipe.Rewrites.First(r => r.Name == name).Description)), details =>
                {
                    details.WriteStartArray("changes");
                    foreach (var (field, rule) in changes)
                    {
                        details.WriteStartObject();
                        details.WriteString("field", field);
                        details.WriteString("rule", rule);
                        details.WriteEndObject();
                    }
                    details.WriteEndArray();
                    details.WritePropertyName("cleaned");
                    using var cleaned = JsonDocument.Parse(json);
                    cleaned.RootElement.WriteTo(details);
                });
            return json;
        }, _ =>
        {
            if (recipe.Fields is not null) recordText.CheckFieldsFound(inputPath);
        });
    }

    private static Outcome Clean(byte[] json, CleaningRecipe recipe, IReadOnlyList<IRecordFilterRule> filters, RecordText recordText)
    {
        var changes = new List<(string Field, string Rule)>();
        if (recipe.Rewrites.Count > 0)
            json = RecordStrings.Rewrite(json, (field, value) =>
            {
                if (recipe.Fields is { } fields && !fields.Contains(RecordStrings.TopLevelKey(field))) return null;
                string text = value;
                foreach (var rule in recipe.Rewrites)
                    if (rule.Rewrite(field, text) is { } rewritten)
                    {
                        changes.Add((field, rule.Name));
                        text = rewritten;
                    }
                return ReferenceEquals(text, value) ? null : text;
            }) ?? json;
        if (filters.Count == 0) return new Outcome(json, changes, null, null);
        using var document = JsonDocument.Parse(json);
        string text = recordText.Of(document.RootElement);
        foreach (var filter in filters)
            if (filter.Reject(document.RootElement, text) is { } measured)
                return new Outcome(json, changes, filter, measured);
        return new Outcome(json, changes, null, null);
    }
}
