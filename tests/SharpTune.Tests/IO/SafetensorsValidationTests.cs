using System.Buffers.Binary;
using SharpTune.IO.Safetensors;

namespace SharpTune.Tests.IO;

/// <summary>Malformed files and checkpoints: each must fail at open with a one-line message naming the file by its path,
/// folder included (and the tensor, where one is at fault), and never expose a partially read file.</summary>
public class SafetensorsValidationTests
{
    private static readonly string Fixture = TestPaths.Fixtures("qwen2-small-vocab", "model.safetensors");
    private const string T = "model.layers.0.mlp.up_proj.weight";

    private static SafetensorsFormatException Fails(string path, string? tensor, params string[] fragments)
    {
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsFile.Open(path).Dispose());
        AssertMessage(e, path, tensor, fragments);
        return e;
    }

    private static void AssertMessage(SafetensorsFormatException e, string path, string? tensor, string[] fragments)
    {
        Assert.StartsWith(path + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain('\r', e.Message);
        Assert.Equal(tensor, e.TensorName);
        if (tensor is not null) Assert.Contains($"tensor '{tensor}'", e.Message);
        foreach (string f in fragments) Assert.Contains(f, e.Message);
        Assert.IsAssignableFrom<IOException>(e);
    }

    /// <summary>The fixture's header text with one substitution, re-packed with a correct length field.</summary>
    private static string WithHeaderEdit(TempDir dir, string name, string from, string to, int extraData = 0)
    {
        byte[] file = File.ReadAllBytes(Fixture);
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        string header = System.Text.Encoding.UTF8.GetString(file, 8, n);
        Assert.Contains(from, header);
        byte[] data = file[(8 + n)..];
        return dir.Raw(name, header.Replace(from, to), [.. data, .. new byte[extraData]]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(100)]
    [InlineData(3960)]
    [InlineData(3961)]
    [InlineData(250_000)]
    [InlineData(480_119)]
    public void TruncatedFileFails(int keep)
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        File.WriteAllBytes(path, File.ReadAllBytes(Fixture)[..keep]);
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.StartsWith(path + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        if (keep >= 8 + 3952)
        {
            // Header intact, data cut: the first tensor in header order that reaches past the end is named.
            using var intact = SafetensorsFile.Open(Fixture);
            string expected = intact.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal).First(t => t.End > keep - 8 - 3952).Name;
            Assert.Equal(expected, e.TensorName);
            Assert.Contains($"end past the data section ({keep - 8 - 3952} bytes)", e.Message);
        }
        else if (keep >= 8)
        {
            Assert.Contains("header length 3952 is larger than", e.Message);
        }
        else
        {
            Assert.Contains("shorter than the 8-byte header length", e.Message);
        }
    }

    [Fact]
    public void EveryTruncationOfASmallFileFails()
    {
        using var dir = new TempDir();
        string good = dir.File("good.safetensors");
        SafetensorsWriter.Write(good, [("a", [3L], new float[] { 1, 2, 3 }), ("b", [1L], new float[] { 4 })]);
        byte[] bytes = File.ReadAllBytes(good);
        string path = dir.File("cut.safetensors");
        for (int keep = 0; keep < bytes.Length; keep++)
        {
            File.WriteAllBytes(path, bytes[..keep]);
            Assert.Throws<SafetensorsFormatException>(() => SafetensorsFile.Open(path).Dispose());
        }
        File.WriteAllBytes(path, [.. bytes, 0]);
        Fails(path, "b", "trailing bytes");
    }

    [Theory]
    [InlineData(0UL, "too small")]
    [InlineData(1UL, "too small")]
    [InlineData(100_000_001UL, "exceeds the 100000000-byte limit")]
    [InlineData(ulong.MaxValue, "exceeds the 100000000-byte limit")]
    [InlineData(480_113UL, "larger than the 480112 bytes")]
    public void BadHeaderLengthFails(ulong length, string fragment)
    {
        using var dir = new TempDir();
        byte[] file = File.ReadAllBytes(Fixture);
        BinaryPrimitives.WriteUInt64LittleEndian(file, length);
        string path = dir.File("model.safetensors");
        File.WriteAllBytes(path, file);
        Fails(path, null, fragment);
    }

    [Theory]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", "not valid JSON")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],}}", "not valid JSON")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}x", "not valid JSON")]
    [InlineData("[1,2,3,4]", "does not start with '{'")]
    [InlineData("  {}", "does not start with '{'")]
    [InlineData("{\"__metadata__\":[\"x\"]}", "__metadata__ is a JSON Array")]
    [InlineData("{\"__metadata__\":{\"n\":1}}", "__metadata__ entry 'n' is a JSON Number")]
    public void MalformedJsonFails(string header, string fragment)
    {
        using var dir = new TempDir();
        Fails(dir.Raw("bad.safetensors", header, 4), null, fragment);
    }

    [Fact]
    public void InvalidUtf8HeaderFails()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.safetensors");
        byte[] header = [(byte)'{', (byte)'"', 0xC3, 0x28, (byte)'"', (byte)':', (byte)'1', (byte)'}'];
        File.WriteAllBytes(path, [8, 0, 0, 0, 0, 0, 0, 0, .. header]);
        Fails(path, null, "not valid UTF-8");
    }

    [Fact]
    public void OffsetsPastTheEndFail()
    {
        using var dir = new TempDir();
        Fails(WithHeaderEdit(dir, "model.safetensors", "\"data_offsets\":[475968,476160]", "\"data_offsets\":[475968,476164]"),
            "model.norm.weight", "data_offsets [475968, 476164] end past the data section (476160 bytes)");
    }

    [Fact]
    public void ShapeSizeMismatchFails()
    {
        using var dir = new TempDir();
        Fails(WithHeaderEdit(dir, "model.safetensors", $"\"{T}\":{{\"dtype\":\"F32\",\"shape\":[96,48]", $"\"{T}\":{{\"dtype\":\"F32\",\"shape\":[96,47]"),
            T, "span 18432 bytes but shape [96, 47] of F32 needs 18048");
        Fails(WithHeaderEdit(dir, "half.safetensors", $"\"{T}\":{{\"dtype\":\"F32\"", $"\"{T}\":{{\"dtype\":\"BF16\""),
            T, "needs 9216");
    }

    [Fact]
    public void OverlappingTensorsFail()
    {
        using var dir = new TempDir();
        string header = """{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""";
        Fails(dir.Raw("overlap.safetensors", header, 16), "b", "data_offsets [8, 16] overlap tensor 'a' [0, 16]");
    }

    [Fact]
    public void HoleBetweenTensorsFails()
    {
        using var dir = new TempDir();
        string header = """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""";
        Fails(dir.Raw("hole.safetensors", header, 12), "b", "hole of 4 bytes");
    }

    [Theory]
    [InlineData("BOOL", "dtype BOOL is not supported")]
    [InlineData("F64", "dtype F64 is not supported")]
    [InlineData("U16", "dtype U16 is not supported")]
    [InlineData("Q4_K", "unknown dtype 'Q4_K'")]
    [InlineData("f32", "unknown dtype 'f32'")]
    public void UnsupportedDtypeFails(string dtype, string fragment)
    {
        using var dir = new TempDir();
        Fails(WithHeaderEdit(dir, "model.safetensors", $"\"{T}\":{{\"dtype\":\"F32\"", $"\"{T}\":{{\"dtype\":\"{dtype}\""), T, fragment, "supported: F32, F16, BF16, I8, U8, I32, I64");
    }

    [Theory]
    [InlineData("\"shape\":[-1],\"data_offsets\":[0,4]", "'shape' entry 0 (-1) is not a non-negative integer")]
    [InlineData("\"shape\":[1.5],\"data_offsets\":[0,4]", "'shape' entry 0 (1.5) is not a non-negative integer")]
    [InlineData("\"shape\":\"1\",\"data_offsets\":[0,4]", "missing 'shape'")]
    [InlineData("\"data_offsets\":[0,4]", "missing 'shape'")]
    [InlineData("\"shape\":[1],\"data_offsets\":[0]", "'data_offsets' has 1 entries")]
    [InlineData("\"shape\":[1],\"data_offsets\":[4,0]", "begin after end")]
    [InlineData("\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]", "more elements than any file can hold")]
    public void BadTensorEntryFails(string fields, string fragment)
    {
        using var dir = new TempDir();
        Fails(dir.Raw("entry.safetensors", "{\"w\":{\"dtype\":\"F32\"," + fields + "}}", 4), "w", fragment);
    }

    [Fact]
    public void DuplicateTensorKeyFails()
    {
        using var dir = new TempDir();
        string entry = "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";
        Fails(dir.Raw("dup.safetensors", "{" + entry + "," + entry + "}", 4), "w", "appears twice");
    }

    [Fact]
    public void ControlCharactersInNamesStayOnOneLine()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsFile.Open(
            dir.Raw("nl.safetensors", "{\"bad\\nname\":{\"dtype\":\"X\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4)));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains("bad\\u000aname", e.Message);
    }

    private static string CopyShardedFixture(TempDir dir)
    {
        foreach (string f in Directory.GetFiles(TestPaths.Fixtures("qwen2-small-vocab-sharded")))
            File.Copy(f, dir.File(Path.GetFileName(f)));
        return dir.Path;
    }

    private static void CheckpointFails(string dir, string file, string? tensor, params string[] fragments)
    {
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsCheckpoint.OpenDirectory(dir).Dispose());
        AssertMessage(e, Path.Combine(dir, file), tensor, fragments);
    }

    [Fact]
    public void MissingShardFails()
    {
        using var dir = new TempDir();
        CopyShardedFixture(dir);
        File.Delete(dir.File("model-00002-of-00003.safetensors"));
        CheckpointFails(dir.Path, "model.safetensors.index.json", "model.layers.1.input_layernorm.weight",
            "shard 'model-00002-of-00003.safetensors', which does not exist");
    }

    [Fact]
    public void IndexMappingTensorToWrongShardFails()
    {
        using var dir = new TempDir();
        CopyShardedFixture(dir);
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, File.ReadAllText(index).Replace(
            "\"lm_head.weight\": \"model-00003-of-00003.safetensors\"", "\"lm_head.weight\": \"model-00001-of-00003.safetensors\""));
        CheckpointFails(dir.Path, "model.safetensors.index.json", "lm_head.weight",
            "mapped to shard 'model-00001-of-00003.safetensors', which does not contain it");
    }

    [Fact]
    public void IndexMissingATensorOfAShardFails()
    {
        using var dir = new TempDir();
        CopyShardedFixture(dir);
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, File.ReadAllText(index).Replace(
            "    \"model.norm.weight\": \"model-00002-of-00003.safetensors\"\n", "")
            .Replace("\"model.layers.2.self_attn.v_proj.weight\": \"model-00002-of-00003.safetensors\",", "\"model.layers.2.self_attn.v_proj.weight\": \"model-00002-of-00003.safetensors\""));
        CheckpointFails(dir.Path, "model.safetensors.index.json", "model.norm.weight", "missing from weight_map");
    }

    [Fact]
    public void TensorInTwoShardsFails()
    {
        using var dir = new TempDir();
        CopyShardedFixture(dir);
        using (var shard3 = SafetensorsFile.Open(dir.File("model-00003-of-00003.safetensors")))
        {
            var tensors = shard3.Tensors.Select(t => (t.Name, t.DType, t.Shape, (ReadOnlyMemory<byte>)shard3.Bytes(t.Name).ToArray()))
                .Append(("model.norm.weight", SharpTune.Engine.DType.F32, [48L], new byte[192])).ToArray();
            shard3.Dispose();
            SafetensorsWriter.Write(dir.File("model-00003-of-00003.safetensors"), tensors, shard3.Metadata);
        }
        CheckpointFails(dir.Path, "model.safetensors.index.json", "model.norm.weight",
            "present in both 'model-00002-of-00003.safetensors' and 'model-00003-of-00003.safetensors'");

        using var flat = new TempDir();
        SafetensorsWriter.Write(flat.File("a.safetensors"), [("w", [1L], new float[1])]);
        SafetensorsWriter.Write(flat.File("b.safetensors"), [("w", [1L], new float[1])]);
        CheckpointFails(flat.Path, "b.safetensors", "w", "also present in 'a.safetensors'");
    }

    [Fact]
    public void BadShardInsideCheckpointNamesTheShard()
    {
        using var dir = new TempDir();
        CopyShardedFixture(dir);
        string shard = dir.File("model-00003-of-00003.safetensors");
        File.WriteAllBytes(shard, File.ReadAllBytes(shard)[..1000]);
        CheckpointFails(dir.Path, "model-00003-of-00003.safetensors", "lm_head.weight", "end past the data section");
    }

    [Theory]
    [InlineData("{\"weight_map\": {\"w\": \"../model.safetensors\"}}", "w", "not a file name in the model folder")]
    [InlineData("{\"weight_map\": {\"w\": 3}}", "w", "not a shard file name")]
    [InlineData("{\"metadata\": {}}", null, "no 'weight_map' object")]
    [InlineData("{\"weight_map\": {}}", null, "weight_map is empty")]
    [InlineData("{\"weight_map\": {\"w\": \"a.safetensors\",}}", null, "not valid JSON")]
    public void MalformedIndexFails(string json, string? tensor, string fragment)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("model.safetensors.index.json"), json);
        CheckpointFails(dir.Path, "model.safetensors.index.json", tensor, fragment);
    }

    [Fact]
    public void DirectoryWithoutWeightsFails()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), "{}");
        var e = Assert.Throws<FileNotFoundException>(() => SafetensorsCheckpoint.OpenDirectory(dir.Path));
        Assert.Equal($"no *.safetensors weights in {dir.Path}", e.Message);
        Assert.Throws<DirectoryNotFoundException>(() => SafetensorsCheckpoint.OpenDirectory(dir.File("absent")));
    }
}
