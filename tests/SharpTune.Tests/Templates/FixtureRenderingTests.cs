using System.Text;
using System.Text.Json;
using SharpTune.Templates;

namespace SharpTune.Tests.Templates;

/// <summary>
/// Every recorded case of tests/fixtures/chat_template (the shared reference set and the extra Jinja2-rendered set)
/// renders exactly through template auto-detection.
/// </summary>
public class FixtureRenderingTests
{
    public static TheoryData<string, string> CaseFiles => new()
    {
        { "qwen1.5-chat", "qwen1.5-chat.json" },
        { "qwen2.5-instruct", "qwen2.5-instruct.json" },
        { "qwen3", "qwen3.json" },
        { "qwen1.5-chat", "extra-qwen1.5-chat.json" },
        { "qwen2.5-instruct", "extra-qwen2.5-instruct.json" },
        { "qwen3", "extra-qwen3.json" },
    };

    [Theory]
    [MemberData(nameof(CaseFiles))]
    public void EveryFixtureCaseRendersExactly(string model, string file)
    {
        var json = File.ReadAllText(TestPaths.Fixtures("chat_template", file));
        var cases = ChatTemplateCases.Parse(json);
        using var doc = JsonDocument.Parse(json);
        var recorded = doc.RootElement.EnumerateArray()
            .Select(c => (Id: c.GetProperty("id").GetString()!, Rendered: c.GetProperty("rendered").GetString()!))
            .ToList();
        Assert.Equal(recorded.Count, cases.Count);

        var template = ChatTemplates.FromModelDirectory(TestPaths.Fixtures("tokenizers", model));
        var failures = new StringBuilder();
        for (var i = 0; i < cases.Count; i++)
        {
            var c = cases[i];
            string actual;
            try
            {
                actual = template.Render(c.Messages, c.AddGenerationPrompt, c.ToolsJson, c.EnableThinking);
            }
            catch (Exception e)
            {
                failures.AppendLine($"{recorded[i].Id}: threw {e.GetType().Name}: {e.Message}");
                continue;
            }
            if (actual != recorded[i].Rendered)
                failures.AppendLine(Describe(recorded[i].Id, recorded[i].Rendered, actual));
        }

        Assert.True(failures.Length == 0, $"{file}: cases that differ from the recorded rendering:\n{failures}");
    }

    [Fact]
    public void FixtureCasesParseToolCallsAndThinkingFlags()
    {
        var cases = ChatTemplateCases.Parse(File.ReadAllText(TestPaths.Fixtures("chat_template", "qwen3.json")));

        var parallel = cases.Single(c => c.Messages.Any(m => m.ToolCalls is { Count: 2 }));
        var call = parallel.Messages.First(m => m.ToolCalls is { Count: 2 }).ToolCalls![1];
        Assert.Equal("get_current_temperature", call.Name);
        Assert.Equal("{\"location\":\"北京, 中国\",\"unit\":\"celsius\"}", call.ArgumentsJson);
        Assert.Equal("get_current_temperature", parallel.Messages.First(m => m.Role == ChatRole.Tool).Name);
        Assert.StartsWith("[", parallel.ToolsJson);

        Assert.Contains(cases, c => c.EnableThinking == false);
        Assert.Contains(cases, c => c.EnableThinking == true);
        Assert.Contains(cases, c => c.Messages.Any(m => m.ReasoningContent is not null));
    }

    [Fact]
    public void ACaseMissingARequiredFieldIsNamedWithItsIndex()
    {
        var error = Assert.Throws<FormatException>(() => ChatTemplateCases.Parse(
            """[{"messages": [{"role": "user", "content": "hi"}]}, {"messages": [{"content": "no role"}]}]"""));
        Assert.Equal("Template case 1: A message has no \"role\".", error.Message);
    }

    private static string Describe(string id, string expected, string actual)
    {
        var at = 0;
        while (at < expected.Length && at < actual.Length && expected[at] == actual[at])
            at++;
        var from = Math.Max(0, at - 40);
        string Around(string s) => JsonSerializer.Serialize(s[from..Math.Min(s.Length, at + 60)]);
        return $"{id}: first difference at char {at} (expected length {expected.Length}, actual {actual.Length})\n"
            + $"  expected …{Around(expected)}\n  actual   …{Around(actual)}";
    }
}
