using System.Text.Json;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

public sealed class CompatibilityCompositionTests
{
    [Fact]
    public void Normalize_MatchesPythonsNfkc_OnMixedStrings()
    {
        // nfkc_cases.json: make_nfkc_cases.py, Python's unicodedata.normalize('NFKC', ...) at Unicode 14.0.0.
        using var cases = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixtures("unicode", "nfkc_cases.json")));
        foreach (var c in cases.RootElement.EnumerateArray())
            Assert.Equal(c.GetProperty("nfkc").GetString(), CompatibilityComposition.Normalize(c.GetProperty("text").GetString()!));
    }
}
