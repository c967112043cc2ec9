using SharpTune.Api;

namespace SharpTune.Tests.Api;

public sealed class StopStringFilterTests
{
    [Fact]
    public void HoldsBackAPossibleStopStringUntilALaterPieceDecides()
    {
        var filter = new StopStringFilter(["</end>"]);
        Assert.Equal("Hello ", filter.Push("Hello </"));
        Assert.Equal("</x", filter.Push("x"));
        Assert.Equal(" ok", filter.Push(" ok</e"));
        Assert.False(filter.Stopped);
        Assert.Equal("</e", filter.Flush());
    }

    [Fact]
    public void CutsAtAStopStringSplitOverPiecesAndDropsEverythingAfter()
    {
        var filter = new StopStringFilter(["STOP", "\n\n"]);
        Assert.Equal("ab", filter.Push("ab\n"));
        Assert.Equal("\ncd", filter.Push("cd"));
        Assert.Equal("xx", filter.Push("xxST"));
        Assert.Equal("", filter.Push("OP and more"));
        Assert.True(filter.Stopped);
        Assert.Equal("", filter.Push("later"));
        Assert.Equal("", filter.Flush());
    }

    [Fact]
    public void TheEarliestOfSeveralStopStringsWins() =>
        Assert.Equal("x", new StopStringFilter(["b", "a"]).Push("xab"));
}
