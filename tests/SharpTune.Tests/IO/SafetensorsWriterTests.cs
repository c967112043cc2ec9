using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;

namespace SharpTune.Tests.IO;

public class SafetensorsWriterTests
{
    private static (string, DType, long[], ReadOnlyMemory<byte>)[] TensorsOf(SafetensorsFile f) =>
        f.Tensors.Select(t => (t.Name, t.DType, t.Shape, (ReadOnlyMemory<byte>)f.Bytes(t.Name).ToArray())).ToArray();

    private static string HeaderText(byte[] file)
    {
        int n = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(file));
        return Encoding.UTF8.GetString(file, 8, n);
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    [InlineData(DType.I8)]
    [InlineData(DType.U8)]
    [InlineData(DType.I32)]
    [InlineData(DType.I64)]
    public void RoundTripsEveryDtype(DType dtype)
    {
        using var dir = new TempDir();
        string path = dir.File("rt.safetensors");
        int size = DTypeInfo.SizeOf(dtype);
        byte[] data = Enumerable.Range(0, 2 * 3 * size).Select(i => (byte)(i * 37 + 11)).ToArray();
        byte[] odd = Enumerable.Range(0, 5 * size).Select(i => (byte)(255 - i)).ToArray();
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\"\n" };
        SafetensorsWriter.Write(path, [("w", dtype, [2, 3], data), ("v", dtype, [5], odd), ("e", dtype, [0], Array.Empty<byte>())], meta);

        using var f = SafetensorsFile.Open(path);
        Assert.Equal(meta, f.Metadata);
        Assert.Equal(["e", "v", "w"], f.Tensors.Select(t => t.Name));
        Assert.Equal(dtype, f.Get("w").DType);
        Assert.Equal([2L, 3L], f.Get("w").Shape);
        Assert.Equal(data, f.Bytes("w").ToArray());
        Assert.Equal(odd, f.Bytes("v").ToArray());
        Assert.Equal(0, f.Get("e").ByteSize);
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(File.ReadAllBytes(path)) % 8);
    }

    [Fact]
    public void HeaderBytesMatchTheReferenceLayout()
    {
        using var dir = new TempDir();
        string path = dir.File("small.safetensors");
        SafetensorsWriter.Write(path,
        [
            ("b", DType.F16, [1], new byte[2]),
            ("a", DType.U8, [3], new byte[] { 1, 2, 3 }),
            ("z", DType.F32, [1], new byte[4]),
            ("c", DType.I32, [1], new byte[4]),
            ("y", DType.BF16, [2], new byte[4]),
            ("x", DType.I8, [1], new byte[1]),
            ("d", DType.I64, [1], new byte[8]),
        ], new Dictionary<string, string> { ["zeta"] = "1", ["format"] = "pt" });

        byte[] file = File.ReadAllBytes(path);
        string expected =
            "{\"__metadata__\":{\"format\":\"pt\",\"zeta\":\"1\"}," +
            "\"d\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}," +
            "\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}," +
            "\"c\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[12,16]}," +
            "\"y\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[16,20]}," +
            "\"b\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[20,22]}," +
            "\"x\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[22,23]}," +
            "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[23,26]}}";
        string padded = expected + new string(' ', (8 - expected.Length % 8) % 8);
        Assert.Equal(padded, HeaderText(file));
        Assert.Equal(0, padded.Length % 8);
        Assert.Equal(8 + padded.Length + 26, file.Length);
        Assert.Equal([1, 2, 3], file[^3..]);
    }

    [Fact]
    public void EmptyFileMatchesRustTestVector()
    {
        // Byte vectors from safetensors' own tests (test_empty): no tensors, with and without metadata.
        using var dir = new TempDir();
        SafetensorsWriter.Write(dir.File("a.safetensors"), Array.Empty<(string, DType, long[], ReadOnlyMemory<byte>)>());
        Assert.Equal([8, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}', 32, 32, 32, 32, 32, 32], File.ReadAllBytes(dir.File("a.safetensors")));

        SafetensorsWriter.Write(dir.File("b.safetensors"), Array.Empty<(string, DType, long[], ReadOnlyMemory<byte>)>(),
            new Dictionary<string, string> { ["framework"] = "pt" });
        byte[] b = File.ReadAllBytes(dir.File("b.safetensors"));
        Assert.Equal(40, b[0]);
        Assert.Equal("{\"__metadata__\":{\"framework\":\"pt\"}}     ", HeaderText(b));
        using var f = SafetensorsFile.Open(dir.File("b.safetensors"));
        Assert.Empty(f.Tensors);
    }

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("reference/forward.safetensors")]
    [InlineData("reference/full_ft_grads.safetensors")]
    [InlineData("reference/full_ft_adamw_clip_step2.safetensors")]
    public void RewritingAFixtureReproducesItByteForByte(string relative)
    {
        string source = TestPaths.Fixtures(["qwen2-small-vocab", .. relative.Split('/')]);
        using var dir = new TempDir();
        string copy = dir.File("copy.safetensors");
        using (var f = SafetensorsFile.Open(source))
            SafetensorsWriter.Write(copy, TensorsOf(f).Reverse(), f.Metadata);
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(copy));
    }

    [Fact]
    public void ShardedWriterReproducesTheTransformersShards()
    {
        string fixture = TestPaths.Fixtures("qwen2-small-vocab-sharded");
        JsonElement names = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixtures("qwen2-small-vocab", "reference", "reference.json")))
            .RootElement.GetProperty("full_finetune").GetProperty("parameter_names");
        using var dir = new TempDir();
        using (var source = SafetensorsCheckpoint.OpenDirectory(TestPaths.Fixtures("qwen2-small-vocab")))
        {
            // named_parameters() order, as transformers' shard_checkpoint walks the state dict. Any limit in
            // [191424, 200640) bytes gives the fixture's split; transformers was called with such a limit.
            var tensors = names.EnumerateArray().Select(n => n.GetString()!)
                .Select(n => (n, source.Get(n).DType, source.Get(n).Shape, (ReadOnlyMemory<byte>)source.Bytes(n).ToArray()));
            IReadOnlyList<string> written = SafetensorsWriter.WriteSharded(dir.Path, tensors, maxShardBytes: 195_000);
            Assert.Equal(
                ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json"],
                written);
        }
        foreach (string file in Directory.GetFiles(fixture, "model*"))
            Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(dir.File(Path.GetFileName(file))));
        Assert.Equal(4, Directory.GetFiles(dir.Path).Length);
    }

    [Fact]
    public void ShardedWriterWithOneShardWritesModelSafetensorsAndRemovesStaleFiles()
    {
        using var dir = new TempDir();
        var big = Enumerable.Range(0, 3).Select(i => ($"t{i}", DType.F32, new long[] { 4 }, (ReadOnlyMemory<byte>)new byte[16])).ToArray();
        Assert.Equal(4, SafetensorsWriter.WriteSharded(dir.Path, big, maxShardBytes: 20).Count);
        File.WriteAllText(dir.File("config.json"), "{}");
        using (var c = SafetensorsCheckpoint.OpenDirectory(dir.Path))
            Assert.Equal(3, c.Files.Count);

        Assert.Equal(["model.safetensors"], SafetensorsWriter.WriteSharded(dir.Path, big.Take(2), maxShardBytes: 1000));
        Assert.Equal(["config.json", "model.safetensors"], Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order());
        using (var c = SafetensorsCheckpoint.OpenDirectory(dir.Path))
        {
            Assert.Equal(["t0", "t1"], c.Names);
            Assert.Equal("pt", c.Files[0].Metadata["format"]);
        }

        SafetensorsWriter.WriteSharded(dir.Path, big, maxShardBytes: 40);
        Assert.Equal(["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"],
            Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void FloatOverloadsNarrowToBf16AndF16()
    {
        using var dir = new TempDir();
        float[] values = [1f, 1.00390625f, 3.14159265f, -0.0001f, float.NaN];
        foreach (DType storeAs in new[] { DType.F32, DType.BF16, DType.F16 })
        {
            string path = dir.File($"{storeAs}.safetensors");
            SafetensorsWriter.Write(path, [("w", [5L], values)], storeAs);
            using var f = SafetensorsFile.Open(path);
            Assert.Equal(storeAs, f.Get("w").DType);
            float[] back = f.ReadFloat32("w");
            for (int i = 0; i < values.Length; i++)
            {
                float expected = storeAs switch
                {
                    DType.BF16 => BFloat16.ToSingle(BFloat16.FromSingle(values[i])),
                    DType.F16 => (float)(Half)values[i],
                    _ => values[i],
                };
                Assert.Equal(expected, back[i]);
            }
        }
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(dir.File("bad.safetensors"), [("w", [1L], new float[1])], DType.I32));
    }

    [Fact]
    public void RejectsInconsistentInputAndLeavesTargetUntouched()
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        SafetensorsWriter.Write(path, [("keep", [1L], new float[] { 7 })]);
        byte[] before = File.ReadAllBytes(path);

        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [("w", DType.F32, [2, 2], new byte[12])]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [("w", DType.F32, [1], new byte[4]), ("w", DType.F32, [1], new byte[4])]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [("__metadata__", DType.F32, [1], new byte[4])]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [("w", DType.F32, [-1], new byte[0])]));
        Assert.Throws<InvalidOperationException>(() => SafetensorsWriter.Write(path, Failing()));

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(["model.safetensors"], Directory.GetFiles(dir.Path).Select(Path.GetFileName));

        static IEnumerable<(string, DType, long[], ReadOnlyMemory<byte>)> Failing()
        {
            yield return ("a", DType.F32, [1], new byte[4]);
            throw new InvalidOperationException("producer failed");
        }
    }

    [Fact]
    public void OverwritesWhileTheOldFileIsMapped()
    {
        using var dir = new TempDir();
        string path = dir.File("w.safetensors");
        SafetensorsWriter.Write(path, [("w", [2L], new float[] { 1, 2 })]);
        using var old = SafetensorsFile.Open(path);
        SafetensorsWriter.Write(path, [("w", [2L], new float[] { 3, 4 })]);
        // The rename replaces the directory entry; the open mapping keeps the old contents.
        Assert.Equal([1f, 2f], old.ReadFloat32("w"));
        using var updated = SafetensorsFile.Open(path);
        Assert.Equal([3f, 4f], updated.ReadFloat32("w"));
    }

    [Fact]
    public void NonAsciiNamesRoundTripAndSortByCodePoint()
    {
        using var dir = new TempDir();
        string path = dir.File("u.safetensors");
        string[] names = ["z", "é", "\U0001F600", "\uFF21", "a\"b\\c\u0001"];
        SafetensorsWriter.Write(path, names.Select(n => (n, DType.U8, new long[] { 1 }, (ReadOnlyMemory<byte>)new byte[] { 1 })));
        string header = HeaderText(File.ReadAllBytes(path));
        Assert.Contains("\"a\\\"b\\\\c\\u0001\"", header);
        Assert.Contains("\"é\"", header);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(["a\"b\\c\u0001", "z", "é", "\uFF21", "\U0001F600"], f.Tensors.Select(t => t.Name));
    }

    [Fact]
    public void EncodeFloat32ProducesLittleEndianBytes()
    {
        float[] v = [1f, -2f];
        Assert.Equal(MemoryMarshal.AsBytes(v.AsSpan()).ToArray(), SafetensorsWriter.EncodeFloat32(v, DType.F32).ToArray());
        Assert.Equal(new byte[] { 0x80, 0x3F, 0x00, 0xC0 }, SafetensorsWriter.EncodeFloat32(v, DType.BF16).ToArray());
        Assert.Equal(new byte[] { 0x00, 0x3C, 0x00, 0xC0 }, SafetensorsWriter.EncodeFloat32(v, DType.F16).ToArray());
    }
}
