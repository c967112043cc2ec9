using SharpTune.Chat;
using SharpTune.Templates;

namespace SharpTune.Tests.Chat;

/// <summary>
/// GLM replies as ChatGLM3's model.chat returns them (modeling_chatglm.py process_response: split at the first newline
/// into metadata and content; an empty metadata line gives the content stripped, a non-empty one is a tool call), and
/// the streamed pieces adding up to the same text.
/// </summary>
public sealed class ReplyStreamTests
{
    [Theory]
    [InlineData("chatglm3", "\nA fever is a raised temperature. \n", "A fever is a raised temperature.")]
    [InlineData("glm4", " \n  Rest and drink water.", "Rest and drink water.")]
    [InlineData("glm4", "no newline at all ", "no newline at all")]
    [InlineData("glm4", "get_weather\n{\"city\": \"Beijing\"}", "get_weather\n{\"city\": \"Beijing\"}")]
    [InlineData("qwen", "\nkept as generated \n", "\nkept as generated \n")]
    public void TheReplyIsProcessResponsesContentAndTheStreamedPiecesAddUpToIt(string template, string generated, string reply)
    {
        Assert.Equal(reply, ChatTemplates.Get(template).ReplyContent(generated));

        // Any cut of the generated text into pieces streams the same reply.
        for (int size = 1; size <= 4; size++)
        {
            var stream = new ReplyStream(ChatTemplates.Get(template));
            var shown = new List<string>();
            for (int at = 0; at < generated.Length; at += size)
                shown.Add(stream.Push(generated.Substring(at, Math.Min(size, generated.Length - at))));
            shown.Add(stream.Finish());
            Assert.Equal(reply, string.Concat(shown));
            Assert.Equal(reply, stream.Reply);
        }
    }

    [Fact]
    public void WithoutATemplateAPlainCompletionIsShownAsGenerated()
    {
        var stream = new ReplyStream(null);
        Assert.Equal("\nkept ", stream.Push("\nkept "));
        Assert.Equal("", stream.Finish());
        Assert.Equal("\nkept ", stream.Reply);
    }

    [Fact]
    public void NothingIsShownBeforeTheMetadataLineEnds()
    {
        var stream = new ReplyStream(ChatTemplates.Get("chatglm3"));
        Assert.Equal("", stream.Push("get_"));
        Assert.Equal("get_weather\n{", stream.Push("weather\n{"));
        Assert.Equal("}", stream.Push("}"));
    }
}
