using System.Text.Json;
using SharpTune.Tests.Training;

namespace SharpTune.Tests.Preference;

/// <summary>tests/fixtures/preference: the DPO-family cases and the KTO case on qwen2-small-vocab with the lora adapter.</summary>
internal static class PreferenceFixtures
{
    public static string Dpo(string file) => TestPaths.Fixtures("preference", "dpo", file);
    public static string Kto(string file) => TestPaths.Fixtures("preference", "kto", file);

    public static JsonElement DpoReference { get; } = Load(Dpo("reference.json"));
    public static JsonElement KtoReference { get; } = Load(Kto("reference.json"));

    public static IEnumerable<JsonElement> DpoCases => DpoReference.GetProperty("cases").EnumerateArray();

    public static JsonElement DpoCase(string name) => DpoCases.Single(c => c.GetProperty("case").GetString() == name);

    public static double[] Doubles(JsonElement e, string key) => e.GetProperty(key).EnumerateArray().Select(v => v.GetDouble()).ToArray();

    private static JsonElement Load(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.Clone();
    }

    /// <summary>|actual − expected| ≤ relative·|expected| (plus a float32 floor) for each value, naming it.</summary>
    public static void AssertRelative(string name, IReadOnlyList<double> expected, IReadOnlyList<float> actual, double relative = 1e-5)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            double diff = Math.Abs(actual[i] - expected[i]);
            Assert.True(diff <= relative * Math.Abs(expected[i]) + 1e-7, $"{name}[{i}]: expected {expected[i]}, got {actual[i]} (diff {diff:E3})");
        }
    }

    /// <summary>Each reference gradient within <paramref name="relative"/> relative L2 of the one computed, tensor by tensor.</summary>
    public static void AssertGradients(string referenceFile, Dictionary<string, float[]> actual, double relative = 1e-4)
    {
        var expected = TrainingFixtures.Read(referenceFile);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal)).Order());
        foreach (var (name, e) in expected)
        {
            var a = actual[name];
            Assert.Equal(e.Length, a.Length);
            double diff = 0, norm = 0;
            for (int i = 0; i < e.Length; i++)
            {
                diff += ((double)a[i] - e[i]) * ((double)a[i] - e[i]);
                norm += (double)e[i] * e[i];
            }
            Assert.True(norm > 0, $"{name}: the reference gradient is zero");
            double rel = Math.Sqrt(diff / norm);
            Assert.True(rel <= relative, $"{name}: relative L2 error {rel:E3} > {relative:E0}");
        }
    }
}
