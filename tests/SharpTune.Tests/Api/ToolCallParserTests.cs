using SharpTune.Api;

namespace SharpTune.Tests.Api;

public sealed class ToolCallParserTests
{
    [Fact]
    public void ReadsQwenToolCallBlocksIntoOpenAiCalls()
    {
        const string reply = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n"
            + "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";

        var (content, calls) = ToolCallParser.Parse(reply);

        Assert.Equal("Let me check.", content);
        Assert.Equal(2, calls.Count);
        Assert.Equal("get_weather", calls[0].Name);
        Assert.Equal("{\"city\": \"Paris\", \"days\": 2}", calls[0].ArgumentsJson);
        Assert.Equal("get_time", calls[1].Name);
        Assert.Equal("{}", calls[1].ArgumentsJson);
        Assert.All(calls, c => Assert.Matches("^call_[A-Za-z0-9]{24}$", c.Id));
        Assert.NotEqual(calls[0].Id, calls[1].Id);
    }

    [Fact]
    public void ACallOnlyReplyHasNoContentAndStringArgumentsStayTheirText()
    {
        var (content, calls) = ToolCallParser.Parse("<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>");
        Assert.Null(content);
        Assert.Equal("{\"a\": 1}", Assert.Single(calls).ArgumentsJson);
    }

    [Theory]
    [InlineData("plain text, no calls")]
    [InlineData("<tool_call>{\"name\": \"f\", \"arguments\": {</tool_call>")]
    [InlineData("<tool_call>{\"arguments\": {}}</tool_call>")]
    [InlineData("<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call><tool_call>[1]</tool_call>")]
    public void AReplyWithoutValidCallsIsPlainText(string reply)
    {
        var (content, calls) = ToolCallParser.Parse(reply);
        Assert.Equal(reply, content);
        Assert.Empty(calls);
    }
}
