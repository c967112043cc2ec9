using System.Globalization;
using SharpTune.Training.Trainer;

namespace SharpTune.Tests.Trainer;

/// <summary>Expected values are what CPython 3 prints for the same expressions.</summary>
public class PythonJsonTests
{
    [Theory]
    [InlineData(2.675, 2, 2.67)]     // 2.675 is 2.67499999… in binary
    [InlineData(0.125, 2, 0.12)]     // exact tie: to even
    [InlineData(0.375, 2, 0.38)]
    [InlineData(1.00005, 4, 1.0001)]
    [InlineData(0.03125, 4, 0.0312)]
    [InlineData(-0.03125, 4, -0.0312)]
    [InlineData(0.12345678, 4, 0.1235)]
    [InlineData(2.4, 2, 2.4)]
    public void Round_MatchesPython(double x, int digits, double expected)
    {
        Assert.Equal(expected, PythonJson.Round(x, digits));
    }

    /// <summary>tests/fixtures/python_round: CPython's round on 3,511 seeded doubles, ties and 1e12..1e17 values included.</summary>
    [Fact]
    public void Round_MatchesCPythonOnEveryReferenceCase()
    {
        var wrong = new List<string>();
        string[] lines = File.ReadAllLines(TestPaths.Fixtures("python_round", "round_cases.txt"));
        foreach (string line in lines)
        {
            string[] fields = line.Split(' ');
            double x = double.Parse(fields[0], CultureInfo.InvariantCulture);
            int digits = int.Parse(fields[1], CultureInfo.InvariantCulture);
            double expected = double.Parse(fields[2], CultureInfo.InvariantCulture);
            double actual = PythonJson.Round(x, digits);
            // Bit for bit: the sign of a zero shows in the JSON (-0.0).
            if (BitConverter.DoubleToInt64Bits(actual) != BitConverter.DoubleToInt64Bits(expected)) wrong.Add($"round({fields[0]}, {digits}) = {fields[2]}, got {actual:R}");
        }
        Assert.Equal(3511, lines.Length);
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {lines.Length} differ from CPython:\n" + string.Join("\n", wrong.Take(20)));
    }

    [Fact]
    public void Dumps_WritesFloatsAsPythonRepr()
    {
        var value = new List<KeyValuePair<string, object?>>
        {
            new("a", 5e-05), new("b", 3.0), new("c", 1e16), new("d", 0.0001), new("e", 123456789012345678.0), new("f", double.NaN), new("g", 7),
        };
        Assert.Equal("{\"a\": 5e-05, \"b\": 3.0, \"c\": 1e+16, \"d\": 0.0001, \"e\": 1.2345678901234568e+17, \"f\": NaN, \"g\": 7}", PythonJson.Dumps(value));
    }

    [Fact]
    public void Dumps_IndentedAndSorted_AsJsonDumpsSortKeys()
    {
        var value = new List<KeyValuePair<string, object?>> { new("z", new List<object?> { 1, 2.5 }), new("a", null), new("m", new List<object?>()) };
        Assert.Equal("{\n  \"a\": null,\n  \"m\": [],\n  \"z\": [\n    1,\n    2.5\n  ]\n}", PythonJson.Dumps(value, indent: 2, sortKeys: true));
    }

    [Fact]
    public void Parse_KeepsIntFloatSplitAndNonFinite()
    {
        var parsed = Assert.IsType<List<KeyValuePair<string, object?>>>(PythonJson.Parse("{\"a\": 1, \"b\": 1.0, \"c\": [NaN, -Infinity], \"d\": \"NaN\"}"));
        Assert.Equal(1L, parsed[0].Value);
        Assert.Equal(1.0, parsed[1].Value);
        var list = Assert.IsType<List<object?>>(parsed[2].Value);
        Assert.True(double.IsNaN((double)list[0]!));
        Assert.Equal(double.NegativeInfinity, list[1]);
        Assert.Equal("NaN", parsed[3].Value);
    }

    [Theory]
    [InlineData(59.9, "0:00:59")]
    [InlineData(3725, "1:02:05")]
    [InlineData(90061.7, "1 day, 1:01:01")]
    [InlineData(172800, "2 days, 0:00:00")]
    public void Timedelta_AsPythonStr(double seconds, string expected)
    {
        Assert.Equal(expected, PythonText.Timedelta(seconds));
    }
}
