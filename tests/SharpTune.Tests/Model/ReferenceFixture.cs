using System.Text.Json;
using SharpTune.IO.Safetensors;

namespace SharpTune.Tests.Model;

/// <summary>A model fixture folder with the Hugging Face reference outputs under reference/.</summary>
public sealed class ReferenceFixture
{
    public string Directory { get; }
    public JsonElement Reference { get; }
    public int[][] InputIds { get; }
    public int[][] AttentionMask { get; }
    public int[][] Labels { get; }

    public ReferenceFixture(string name)
    {
        Directory = TestPaths.Fixtures(name);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Directory, "reference", "reference.json")));
        Reference = doc.RootElement.Clone();
        var batch = Reference.GetProperty("batch");
        InputIds = IntMatrix(batch.GetProperty("input_ids"));
        AttentionMask = IntMatrix(batch.GetProperty("attention_mask"));
        Labels = IntMatrix(batch.GetProperty("labels"));
    }

    public float[] ForwardTensor(string name)
    {
        using var file = SafetensorsFile.Open(Path.Combine(Directory, "reference", "forward.safetensors"));
        return file.ReadFloat32(name);
    }

    public static int[][] IntMatrix(JsonElement e) =>
        e.EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();

    public static int[] IntArray(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();
}
