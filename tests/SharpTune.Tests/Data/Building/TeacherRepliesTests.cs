using SharpTune.Data.Building;

namespace SharpTune.Tests.Data.Building;

public sealed class TeacherRepliesTests
{
    [Theory]
    [InlineData("Here are three questions:\n1. What is A?\n2) What is B?\n3、 What is C?")]
    [InlineData("- What is A?\n* What is B?\n• What is C?")]
    [InlineData("[\"What is A?\", \"What is B?\", \"What is C?\"]")]
    [InlineData("```json\n{\"questions\": [\"What is A?\", \"What is B?\", \"What is C?\"]}\n```")]
    [InlineData("Questions:\nWhat is A?\n\nWhat is B?\nWhat is C?\n")]
    [InlineData("Q1: What is A?\nQ2: **What is B?**\nQ3: \"What is C?\"")]
    public void ListsAreReadInEveryCommonShape(string reply)
    {
        Assert.Equal(["What is A?", "What is B?", "What is C?"], TeacherReplies.ParseList(reply, 3));
    }

    [Fact]
    public void ChineseListsAreRead()
    {
        Assert.Equal(["北京是哪个国家的首都？", "长城有多长？"], TeacherReplies.ParseList("问题1：北京是哪个国家的首都？\n问题2：长城有多长？", 5));
    }

    [Fact]
    public void AListIsCutToTheNumberAskedAndRepeatsDropped()
    {
        Assert.Equal(["What is A?", "What is B?"], TeacherReplies.ParseList("1. What is A?\n2. What is A?\n3. What is B?\n4. What is C?", 2));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   \n  ")]
    [InlineData("1. ???\n2. 42")]
    [InlineData("[1, 2, 3]")]
    public void EmptyOrGarbledRepliesGiveNothing(string reply)
    {
        Assert.Empty(TeacherReplies.ParseList(reply, 3));
    }

    [Theory]
    [InlineData("NOT IN PASSAGE", null)]
    [InlineData("not in passage.", null)]
    [InlineData("  ", null)]
    [InlineData("原文未提及。", null)]
    [InlineData("  It takes 3 steps. ", "It takes 3 steps.")]
    public void AnAnswerIsItsTextUnlessEmptyOrTheNotAnswerableReply(string reply, string? expected)
    {
        string marker = reply.Contains('原') ? "原文未提及" : "NOT IN PASSAGE";
        Assert.Equal(expected, TeacherReplies.ParseAnswer(reply, marker));
    }
}
